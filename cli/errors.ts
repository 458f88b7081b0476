// Coded errors of the kiln command line.
import { defineCodes, KilnError } from "../kernel/errors.js";

export const CliCodes = defineCodes("cli", {
  KILN_CLI_USAGE: { summary: "Unknown command or flag, or a missing value; run `kiln --help`." },
  KILN_CLI_UNAVAILABLE: { summary: "This component is not part of this build of Kiln yet." },
});

export class CliError extends KilnError {
  constructor(code: keyof typeof CliCodes, message: string) {
    super(code, message);
    this.name = "CliError";
  }
}
