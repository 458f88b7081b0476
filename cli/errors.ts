// Coded errors of the kiln command line.
import { defineCodes, KilnError } from "../kernel/errors.js";

export const CliCodes = defineCodes("cli", {
  KILN_CLI_USAGE: { summary: "Unknown command or flag, or a missing value; run `kiln --help`." },
  KILN_CLI_NOT_LOGGED_IN: {
    summary: "No token, or the Cloud Controller refused it (expired or revoked); run `kiln login`.",
  },
  KILN_CLI_NO_TARGET: { summary: "No space is targeted; run `kiln target -s SPACE`." },
  KILN_CLI_API_UNREACHABLE: {
    summary: "The Cloud Controller at the configured API URL does not answer; check `kiln login -a URL`.",
  },
  KILN_CLI_API_RESPONSE: {
    summary: "The Cloud Controller answered with something that is not the API's JSON; check the API URL.",
  },
  KILN_CLI_CONFIG: { summary: "$KILN_HOME/config.json is unreadable or malformed; fix it or log in again." },
  KILN_CLI_NOT_FOUND: { summary: "No app, space or route of that name in the targeted space." },
  KILN_CLI_MANIFEST: {
    summary: "manifest.yml is malformed; the message names the file, line and field.",
  },
  KILN_CLI_APP_FILES: {
    summary:
      "The app folder cannot be read or holds a symbolic link to outside it; fix the link or ignore it in .kilnignore.",
  },
  KILN_CLI_STAGING_FAILED: { summary: "The build failed; the lines above are the end of its staging log." },
  KILN_CLI_START_FAILED: {
    summary:
      "The controller could not place the app's instances (no DEA with room for its memory and disk: KILN_CC_NO_DEA); scale down, lower the limits or add a DEA.",
  },
  KILN_CLI_BENCH_UNREACHABLE: {
    summary:
      "`kiln bench` could not connect to the target (refused, unknown host or no answer); check the URL, or that the router and the app are running.",
  },
  KILN_CLI_START_TIMEOUT: {
    summary: "No instance of the app reached RUNNING in time; see `kiln logs NAME --recent`.",
  },
});

export class CliError extends KilnError {
  constructor(code: keyof typeof CliCodes, message: string) {
    super(code, message);
    this.name = "CliError";
  }
}

/** An error the Cloud Controller reported, carried with its own code (`KILN_CC_…`) and status. */
export class ApiError extends KilnError {
  constructor(code: string, message: string, status: number) {
    super(code, message, { status });
    this.name = "ApiError";
  }
}
