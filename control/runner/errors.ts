// Codes of the Cloud Controller's DEA side (placement, staging, starting).
import { defineCodes, KilnError } from "../../kernel/errors.js";

export const RunnerCodes = defineCodes("control", {
  KILN_CC_NO_DEA: {
    status: 503,
    summary:
      "No DEA answered dea.discover with room for the app (memory, disk, stack); add capacity or lower the limits.",
  },
  KILN_CC_STAGING_LOST: {
    status: 502,
    summary:
      "The DEA staging the app did not answer (it stopped or NATS was cut), or the controller staging it stopped; push again.",
  },
});

export type RunnerCode = keyof typeof RunnerCodes;

export class RunnerError extends KilnError {
  override readonly code: RunnerCode;

  constructor(code: RunnerCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "RunnerError";
    this.code = code;
  }
}
