// Coded errors of the DEA process itself (`kiln dea`): its settings. The instances it runs,
// staging and placement have their own codes in container/, staging/ and placement/.
import { defineCodes } from "../../kernel/errors.js";
import { DeaError } from "../errors.js";

export const DeaProcessCodes = defineCodes("dea", {
  KILN_DEA_CONFIG: {
    summary:
      "A `kiln dea` setting (flag or KILN_DEA_* / KILN_NATS_* environment variable) is malformed; the message names it.",
  },
});

export type DeaProcessCode = keyof typeof DeaProcessCodes;

export class DeaProcessError extends DeaError<DeaProcessCode> {}
