// Staging's coded errors: an application package the DEA refuses to unpack, and archive
// work that failed. Each refusal names the entry and the rule it broke.
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
});

export type StagingCode = keyof typeof StagingCodes;

export class StagingError extends DeaError<StagingCode> {}
