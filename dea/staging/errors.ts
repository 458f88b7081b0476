// Staging's coded errors: an application package the DEA refuses to unpack, archive work
// that failed, and a staging (detect, compile, release) that did not give a droplet.
// Each package refusal names the entry and the rule it broke.
import { defineCodes } from "../../kernel/errors.js";
import { DeaError } from "../errors.js";

export const StagingCodes = defineCodes("dea staging", {
  KILN_DEA_ARCHIVE_PATH_ESCAPE: {
    summary:
      "The package has an entry whose path holds a `..` segment or runs through a symbolic link; repack it without.",
  },
  KILN_DEA_ARCHIVE_ABSOLUTE_PATH: {
    summary:
      "The package has an entry with an absolute path; repack it with paths relative to the app's root.",
  },
  KILN_DEA_ARCHIVE_LINK_ESCAPE: {
    summary:
      "The package has a symbolic or hard link whose target is absolute or lies outside the app's folder; replace it with the file.",
  },
  KILN_DEA_ARCHIVE_SPECIAL_FILE: {
    summary:
      "The package holds a device, FIFO or other special file; only files, folders and links are accepted.",
  },
  KILN_DEA_ARCHIVE_TOO_MANY_FILES: {
    summary:
      "The package holds more entries than the DEA's file-count limit; leave build output and caches out of it.",
  },
  KILN_DEA_ARCHIVE_TOO_LARGE: {
    summary: "The package unpacks to more bytes than the DEA's size limit; leave large files out of it.",
  },
  KILN_DEA_ARCHIVE_PATH_TOO_LONG: {
    summary: "The package has an entry path longer than the DEA's path-length limit; shorten it.",
  },
  KILN_DEA_ARCHIVE_CORRUPT: {
    summary:
      "The package is not a readable .tar.gz (bad gzip data, a damaged or truncated tar stream); upload it again.",
  },
  KILN_DEA_ARCHIVE_DEST_NOT_EMPTY: {
    summary:
      "The folder a package was to be unpacked into already holds files; the DEA unpacks only into a new folder.",
  },
  KILN_DEA_ARCHIVE_IO: {
    summary:
      "Reading or writing an archive on the DEA's disk failed; the message names the file and the system error.",
  },
  KILN_DEA_STAGING_PACKAGE_MISSING: {
    summary:
      "The app's package is not in the object store under the key the staging request names; upload the package again.",
  },
  KILN_DEA_STAGING_NO_BUILDPACK: {
    summary:
      "No built-in buildpack (node, python, go, static, procfile) detected the app; name a buildpack, or add a Procfile with a `web:` line.",
  },
  KILN_DEA_STAGING_BUILDPACK_UNKNOWN: {
    summary:
      "The requested buildpack is neither a built-in name nor an absolute path to a folder with executable bin/compile and bin/release.",
  },
  KILN_DEA_STAGING_COMPILE_FAILED: {
    summary:
      "The buildpack's bin/compile exited non-zero (a dependency that would not install, a build error); the log tail shows why.",
  },
  KILN_DEA_STAGING_RELEASE_FAILED: {
    summary: "The buildpack's bin/release failed or printed YAML that is not a mapping; fix the buildpack.",
  },
  KILN_DEA_STAGING_NO_START_COMMAND: {
    summary:
      "Staging found no start command: add a Procfile with a `web:` line, or the file the buildpack starts by default.",
  },
  KILN_DEA_STAGING_TIMEOUT: {
    summary:
      "Staging ran longer than its timeout and was killed; raise the timeout or make the build faster.",
  },
  KILN_DEA_STAGING_OUT_OF_MEMORY: {
    summary: "Staging ran out of its memory limit and was killed; stage with more memory.",
  },
  KILN_DEA_STAGING_DISK: {
    summary: "The staged app is larger than its disk quota; raise the disk quota or leave files out.",
  },
  KILN_DEA_STAGING_ABORTED: {
    summary: "Staging was stopped before it finished (the DEA is shutting down); stage again.",
  },
  KILN_DEA_STAGING_FAILED: {
    summary:
      "The staging process could not run or ended unexpectedly (container start, object store); the message names the step.",
  },
});

export type StagingCode = keyof typeof StagingCodes;

export class StagingError extends DeaError<StagingCode> {}
