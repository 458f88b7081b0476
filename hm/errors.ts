// The Health Manager's coded errors. Malformed bus messages are not errors of the HM: they are
// counted and logged with KILN_HM_BAD_MESSAGE and the HM carries on.
import { defineCodes, KilnError } from "../kernel/errors.js";

export const HmCodes = defineCodes("hm", {
  KILN_HM_CONFIG: {
    summary: "A KILN_HM_* variable or `kiln hm` flag is unknown or malformed; the message names it.",
  },
  KILN_HM_BAD_MESSAGE: {
    summary:
      "A dea.heartbeat, droplet.exited or kiln_apps record could not be read; it is counted and ignored.",
  },
});

export type HmCode = keyof typeof HmCodes;

export class HmError extends KilnError {
  declare readonly code: HmCode;

  constructor(code: HmCode, message: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = "HmError";
  }
}
