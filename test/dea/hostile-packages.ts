// Packages built header by header, so each field is the test's choice (a size that lies, a
// device entry, a path tar itself would refuse to write). The archive tests use the builders
// for their full table; the DEA test sends the five kinds a user could upload through
// dea.stage and expects each refused with its code.
import { gzipSync } from "node:zlib";
import { Header, type HeaderData } from "tar";
import type { StagingCode } from "../../dea/staging/errors.js";

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

export interface HostilePackage {
  name: string;
  bytes: Buffer;
  /** Disk the staging request gives the task (its uncompressed-size limit). */
  diskMb?: number;
  code: StagingCode;
}

/** The hostile kinds a user could upload, each as a whole package with a real app next to it. */
export function hostilePackages(): HostilePackage[] {
  const app = [
    file("package.json", '{"name":"x","scripts":{"start":"node server.js"}}'),
    file("server.js", ""),
  ];
  return [
    {
      name: "zip slip",
      bytes: tarball([...app, file("../../evil", "x")]),
      code: "KILN_DEA_ARCHIVE_PATH_ESCAPE",
    },
    {
      name: "absolute path",
      bytes: tarball([...app, file("/tmp/kiln-evil", "x")]),
      code: "KILN_DEA_ARCHIVE_ABSOLUTE_PATH",
    },
    {
      name: "link escape",
      bytes: tarball([
        ...app,
        { header: { path: "etc", type: "SymbolicLink", linkpath: "/etc" } },
        file("etc/x", "x"),
      ]),
      code: "KILN_DEA_ARCHIVE_LINK_ESCAPE",
    },
    {
      name: "device file",
      bytes: tarball([...app, { header: { path: "mem", type: "CharacterDevice", devmaj: 1, devmin: 1 } }]),
      code: "KILN_DEA_ARCHIVE_SPECIAL_FILE",
    },
    {
      // 64 MiB of zeros gzip to ~64 KiB: more than the 16 MiB of disk the task is given.
      name: "zip bomb",
      bytes: tarball([...app, file("zeros", Buffer.alloc(64 * 1024 * 1024))]),
      diskMb: 16,
      code: "KILN_DEA_ARCHIVE_TOO_LARGE",
    },
  ];
}
