// Coded errors of the DEA's placement: the resource ledger that backs dea.discover and
// dea.advertise, and the requests the discover handler refuses without a decode error.
import { defineCodes } from "../../kernel/errors.js";
import { DeaError } from "../errors.js";

export const PlacementCodes = defineCodes("dea", {
  KILN_DEA_NO_ROOM: {
    summary:
      "The DEA has not enough free memory or disk for this instance (its capacity less what its instances reserve).",
  },
  KILN_DEA_DUPLICATE_INSTANCE: {
    summary: "An instance id was reserved twice on one DEA; each instance reserves its resources once.",
  },
  KILN_DEA_BAD_RESERVATION: {
    summary:
      "A reservation has an empty app or instance id, or memory/disk that is not a whole number of MiB.",
  },
  KILN_DEA_DISCOVER_NO_REPLY: {
    summary:
      "A dea.discover arrived without a reply subject (published, not requested); it cannot be answered.",
  },
});

export type PlacementCode = keyof typeof PlacementCodes;

export class PlacementError extends DeaError<PlacementCode> {}
