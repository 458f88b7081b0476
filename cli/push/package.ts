// The upload body of POST /v3/packages/:guid/upload (control/API.md): a tar.gz whose first entry
// is `.kiln-resources.json`, the files the controller already holds, followed by every other file.
// Produced as a stream, a file at a time, so the package is never held whole in memory.
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { Header, Pax } from "tar";
import { CliError } from "../errors.js";
import type { AppFile } from "./scan.js";

export const RESOURCES_ENTRY = ".kiln-resources.json";

export interface MatchedResource {
  path: string;
  sha1: string;
  mode: number;
}

// Fixed times and owners: the same files give the same bytes.
const EPOCH = new Date(0);

function headerBlocks(path: string, size: number, mode: number): Buffer[] {
  const header = new Header({
    path,
    mode,
    size,
    type: "File",
    mtime: EPOCH,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
  });
  const needPax = header.encode();
  const blocks: Buffer[] = [];
  if (needPax) blocks.push(new Pax({ path, size, mtime: EPOCH }).encode());
  if (header.block !== undefined) blocks.push(header.block);
  return blocks;
}

function padding(size: number): Buffer | null {
  const rest = size % 512;
  return rest === 0 ? null : Buffer.alloc(512 - rest);
}

/** The uncompressed tar: resources entry, then the unmatched files' contents. */
async function* tarEntries(
  matched: readonly MatchedResource[],
  upload: readonly AppFile[],
  onBytes: (n: number) => void,
): AsyncGenerator<Buffer> {
  const index = Buffer.from(JSON.stringify(matched));
  yield* headerBlocks(RESOURCES_ENTRY, index.length, 0o644);
  yield index;
  const pad = padding(index.length);
  if (pad !== null) yield pad;
  for (const file of upload) {
    yield* headerBlocks(file.path, file.size, file.mode);
    let sent = 0;
    const body = file.size === 0 ? [] : createReadStream(file.abs, { end: file.size - 1 });
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      // A file that grew since the scan is cut at its scanned size, so the header stays true.
      const part = sent + buf.length > file.size ? buf.subarray(0, file.size - sent) : buf;
      sent += part.length;
      onBytes(part.length);
      yield part;
    }
    if (sent < file.size) {
      throw new CliError(
        "KILN_CLI_APP_FILES",
        `${file.path} shrank while it was uploaded (${sent} of ${file.size} bytes)`,
      );
    }
    const tail = padding(file.size);
    if (tail !== null) yield tail;
  }
  yield Buffer.alloc(1024); // two zero blocks end the archive
}

/**
 * The package as a gzip stream. `matched` are the files the controller reported holding;
 * every other file of `files` is sent. `onBytes` counts file bytes read, for a progress bar.
 */
export function packageStream(
  files: readonly AppFile[],
  matchedSha1s: ReadonlySet<string>,
  onBytes: (n: number) => void = () => {},
): Readable {
  const matched: MatchedResource[] = [];
  const upload: AppFile[] = [];
  for (const f of files) {
    if (matchedSha1s.has(f.sha1)) matched.push({ path: f.path, sha1: f.sha1, mode: f.mode });
    else upload.push(f);
  }
  const tar = Readable.from(tarEntries(matched, upload, onBytes), { objectMode: false });
  const gzip = createGzip();
  tar.on("error", (err) => gzip.destroy(err));
  return tar.pipe(gzip);
}
