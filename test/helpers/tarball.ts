// A .tar.gz built header by header, so each field is the test's choice (a size that lies, a
// device entry, a path tar itself would refuse to write, a link out of the folder). The DEA's
// archive tests, its hostile packages and the controller's upload tests all build with it.
import { gzipSync } from "node:zlib";
import { Header, type HeaderData } from "tar";

export interface RawEntry {
  header: HeaderData;
  /** The bytes after the header, whatever the header says its size is; padded to 512. */
  body?: Buffer;
}

function block(h: HeaderData): Buffer {
  const header = new Header({ mode: 0o644, mtime: new Date(1_000_000_000_000), uid: 0, gid: 0, ...h });
  header.encode();
  return header.block as Buffer;
}

function pad(b: Buffer): Buffer {
  const rest = b.length % 512;
  return rest === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - rest)]);
}

export function file(path: string, content: string | Buffer, mode = 0o644): RawEntry {
  const body = typeof content === "string" ? Buffer.from(content) : content;
  return { header: { path, type: "File", size: body.length, mode }, body };
}

/** A .tar.gz of the entries; `tail` goes after them instead of the two end blocks. */
export function tarball(entries: RawEntry[], tail: Buffer = Buffer.alloc(1024)): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(block(e.header));
    if (e.body !== undefined) parts.push(pad(e.body));
  }
  parts.push(tail);
  return gzipSync(Buffer.concat(parts), { level: 1 });
}
