// A package upload streamed from the request to kiln_blobs: the tar.gz body is parsed as it
// arrives (tar's Parser), each file is hashed and stored under `files/<sha1>`, the files the
// client said the controller holds (`.kiln-resources.json`, the first entry) are read back
// from the object store, and the package tar.gz is spooled to a temp file as it goes, then
// stored as `packages/<guid>.tar.gz`. Nothing holds the whole package in memory: a file is
// buffered only when small, else it goes through a temp file.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createGzip, type Gzip } from "node:zlib";
import type { ObjectStore } from "nats";
import { Header, Parser, Pax, type ReadEntry } from "tar";
import { duringFailover } from "../../messaging/jetstream.js";
import { CcError, invalid } from "../errors.js";
import { pushKeys } from "../store/push.js";
import { SHA1 } from "./resource-matches.js";

export const RESOURCES_ENTRY = ".kiln-resources.json";
/** Files up to this size are hashed in memory; larger ones through a temp file. */
const BUFFER_LIMIT = 4 * 1024 * 1024;
const MAX_RESOURCES_JSON = 16 * 1024 * 1024;
const EPOCH = new Date(0);

export interface Matched {
  path: string;
  sha1: string;
  mode: number;
}

export interface UploadResult {
  sha256: string;
  size: number;
  /**
   * SHA-256 of the sorted (path, mode, sha1) listing: the same files give the same value whichever
   * of them the controller already held, while the tar.gz's bytes follow the upload's order.
   */
  files_sha256: string;
}

/** A path inside the package: relative, no `..`, no NUL; `./` prefixes dropped. */
export function packagePath(raw: string, field: string): string {
  let p = raw.replace(/\\/g, "/");
  if (p.startsWith("/") || /^[A-Za-z]:/.test(p)) throw invalid(field, `${raw} is an absolute path`);
  while (p.startsWith("./")) p = p.slice(2);
  const parts = p.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.length === 0 || p.includes("\0") || p.length > 4096)
    throw invalid(field, `${raw} is not a file path`);
  if (parts.includes("..")) throw invalid(field, `${raw} leaves the package (..)`);
  return parts.join("/");
}

function tooLarge(limit: number): CcError {
  return new CcError("KILN_CC_PACKAGE_TOO_LARGE", `the package is over ${limit / 1024 / 1024} MiB`);
}

function matchedList(text: string): Matched[] {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    throw invalid(RESOURCES_ENTRY, "is not JSON");
  }
  if (!Array.isArray(list)) throw invalid(RESOURCES_ENTRY, "must be a list of { path, sha1, mode }");
  return list.map((r: unknown, i) => {
    const o = (typeof r === "object" && r !== null ? r : {}) as Record<string, unknown>;
    const field = `${RESOURCES_ENTRY}[${i}]`;
    if (typeof o.path !== "string") throw invalid(`${field}.path`, "must be a string");
    if (typeof o.sha1 !== "string" || !SHA1.test(o.sha1))
      throw invalid(`${field}.sha1`, "must be a SHA-1 as 40 lower-case hex digits");
    const mode = o.mode ?? 0o644;
    if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 0o7777)
      throw invalid(`${field}.mode`, "must be a file mode from 0 to 0o7777");
    return { path: packagePath(o.path, `${field}.path`), sha1: o.sha1, mode: mode & 0o777 };
  });
}

/**
 * Stores the file at `path` as `name`, read afresh for each try: a put that timed out while a
 * cluster elected new leaders is tried again (the same bytes under the same name, stored once).
 */
function putFile(blobs: ObjectStore, name: string, path: string): Promise<unknown> {
  return duringFailover(
    () =>
      blobs.put({ name }, Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>),
    true,
  );
}

/**
 * The package tar.gz: headers by hand, gzip, SHA-256 and size of the output. It is spooled to a
 * file and stored once complete, so the store's put can be tried again: when a server of a NATS
 * cluster dies, puts time out until its assets have new leaders, and a streamed upload could
 * not be replayed.
 */
class PackageWriter {
  private readonly gzip: Gzip = createGzip();
  private readonly hash = createHash("sha256");
  private size = 0;
  private readonly spool: WriteStream;
  private readonly spooled: Promise<unknown>;
  private failed: unknown = null;

  constructor(
    private readonly blobs: ObjectStore,
    private readonly key: string,
    private readonly spoolPath: string,
  ) {
    const spool = createWriteStream(spoolPath);
    this.spool = spool;
    this.gzip.on("data", (chunk: Buffer) => {
      this.hash.update(chunk);
      this.size += chunk.length;
    });
    this.gzip.pipe(spool);
    this.spooled = Promise.race([
      once(spool, "close"),
      once(spool, "error").then(([err]) => Promise.reject(err)),
    ]);
    this.spooled.catch((err: unknown) => {
      this.failed = err;
      this.gzip.destroy();
    });
  }

  private async write(buf: Buffer): Promise<void> {
    if (this.failed !== null) throw this.failed;
    if (!this.gzip.write(buf)) await Promise.race([once(this.gzip, "drain"), this.spooled]);
  }

  /** One file: header, its bytes from `data`, padding to 512. */
  async file(
    path: string,
    mode: number,
    size: number,
    data: AsyncIterable<Buffer | Uint8Array>,
  ): Promise<void> {
    const h = new Header({ path, mode, size, type: "File", mtime: EPOCH, uid: 0, gid: 0 });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    if (h.needPax) await this.write(new Pax({ path, mtime: EPOCH }, false).encode());
    await this.write(block);
    let n = 0;
    for await (const c of data) {
      n += c.length;
      await this.write(Buffer.isBuffer(c) ? c : Buffer.from(c));
    }
    if (n !== size) throw new CcError("KILN_CC_INTERNAL", `${path}: expected ${size} bytes, read ${n}`);
    if (size % 512 !== 0) await this.write(Buffer.alloc(512 - (size % 512)));
  }

  async finish(): Promise<{ sha256: string; size: number }> {
    await this.write(Buffer.alloc(1024));
    this.gzip.end();
    await this.spooled;
    await putFile(this.blobs, this.key, this.spoolPath);
    return { sha256: this.hash.digest("hex"), size: this.size };
  }

  abort(): void {
    this.gzip.destroy();
    this.spool.destroy();
  }
}

/** Entries of the parser one at a time; a waiting entry holds the parser (and so the request) back. */
function entries(raw: IncomingMessage, limit: number): AsyncIterable<ReadEntry> & { stop(): void } {
  const parser = new Parser({ strict: true });
  const queue: (ReadEntry | null)[] = [];
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  parser.on("entry", (e: ReadEntry) => {
    queue.push(e);
    poke();
  });
  parser.on("end", () => {
    queue.push(null);
    poke();
  });
  const fail = (err: unknown) => {
    failure ??= err;
    poke();
  };
  parser.on("error", (err: Error) => fail(invalid("body", `is not a tar.gz: ${err.message}`)));
  parser.on("warn", (_code: string, message: string | Error) =>
    fail(invalid("body", `is not a tar.gz: ${String(message instanceof Error ? message.message : message)}`)),
  );
  let received = 0;
  raw.on("data", (c: Buffer) => {
    received += c.length;
    if (received > limit) fail(tooLarge(limit));
  });
  raw.on("error", fail);
  raw.pipe(parser as unknown as NodeJS.WritableStream);
  return {
    stop() {
      raw.unpipe(parser as unknown as NodeJS.WritableStream);
      raw.resume();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (failure !== null) throw failure;
        const e = queue.shift();
        if (e === null) return;
        if (e !== undefined) {
          yield e;
          continue;
        }
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    },
  };
}

async function readAll(e: ReadEntry, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of e) {
    n += (c as Buffer).length;
    if (n > max) throw invalid(String(e.path), `is over ${max} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function* once1(b: Buffer): AsyncIterable<Buffer> {
  yield b;
}

/** Streams the upload into `packages/<guid>.tar.gz`; throws a coded error (413, 422) on a refused body. */
export async function receivePackage(
  raw: IncomingMessage,
  blobs: ObjectStore,
  guid: string,
  limit: number,
): Promise<UploadResult> {
  const declared = Number(raw.headers["content-length"] ?? 0);
  if (declared > limit) throw tooLarge(limit);
  const source = entries(raw, limit);
  const listing: string[] = [];
  const tmp = await mkdtemp(join(tmpdir(), "kiln-cc-upload-"));
  const writer = new PackageWriter(blobs, pushKeys.packageBlob(guid), join(tmp, "package.tar.gz"));
  let total = 0;
  const count = (n: number) => {
    total += n;
    if (total > limit) throw tooLarge(limit);
  };
  /** Stores a file under files/<sha1> unless held already. */
  const keep = async (sha1: string, put: () => Promise<unknown>) => {
    if ((await blobs.info(pushKeys.fileBlob(sha1))) === null) await put();
  };
  try {
    let first = true;
    let n = 0;
    for await (const e of source) {
      if (first) {
        first = false;
        if (e.path !== RESOURCES_ENTRY && e.path !== `./${RESOURCES_ENTRY}`)
          throw invalid("body", `must start with ${RESOURCES_ENTRY}`);
        const matched = matchedList((await readAll(e, MAX_RESOURCES_JSON)).toString("utf8"));
        const infos = await Promise.all(matched.map((m) => blobs.info(pushKeys.fileBlob(m.sha1))));
        for (let i = 0; i < matched.length; i++) {
          const m = matched[i] as Matched;
          const info = infos[i];
          if (info === null || info === undefined)
            throw invalid(
              `${RESOURCES_ENTRY}[${i}].sha1`,
              `${m.sha1} (${m.path}) is not held by the controller`,
            );
          count(info.size);
        }
        for (const m of matched) {
          const got = await blobs.get(pushKeys.fileBlob(m.sha1));
          if (got === null)
            throw invalid(RESOURCES_ENTRY, `${m.sha1} (${m.path}) is not held by the controller`);
          await writer.file(m.path, m.mode, got.info.size, got.data as unknown as AsyncIterable<Uint8Array>);
          listing.push(`${m.path}\0${m.mode}\0${m.sha1}`);
        }
        continue;
      }
      const field = `body entry ${String(e.path)}`;
      if (e.type === "Directory") {
        packagePath(String(e.path), field);
        e.resume();
        continue;
      }
      if (e.type !== "File" && e.type !== "OldFile" && e.type !== "ContiguousFile")
        throw invalid(field, `is a ${e.type}; only regular files may be uploaded`);
      const path = packagePath(String(e.path), field);
      const size = e.size ?? 0;
      count(size);
      const mode = (e.mode ?? 0o644) & 0o777;
      if (size <= BUFFER_LIMIT) {
        const data = await readAll(e, BUFFER_LIMIT);
        const sha1 = createHash("sha1").update(data).digest("hex");
        await keep(sha1, () =>
          duringFailover(() => blobs.putBlob({ name: pushKeys.fileBlob(sha1) }, data), true),
        );
        await writer.file(path, mode, data.length, once1(data));
        listing.push(`${path}\0${mode}\0${sha1}`);
      } else {
        const file = join(tmp, String(n++));
        const h = createHash("sha1");
        const ws = createWriteStream(file);
        for await (const c of e) {
          h.update(c as Buffer);
          if (!ws.write(c)) await once(ws, "drain");
        }
        ws.end();
        await once(ws, "close");
        const sha1 = h.digest("hex");
        await keep(sha1, () => putFile(blobs, pushKeys.fileBlob(sha1), file));
        await writer.file(path, mode, size, createReadStream(file));
        listing.push(`${path}\0${mode}\0${sha1}`);
        await rm(file, { force: true });
      }
    }
    if (first) throw invalid("body", `must start with ${RESOURCES_ENTRY}`);
    const written = await writer.finish();
    listing.sort();
    return { ...written, files_sha256: createHash("sha256").update(listing.join("\n")).digest("hex") };
  } catch (err) {
    source.stop();
    writer.abort();
    await blobs.delete(pushKeys.packageBlob(guid)).catch(() => {});
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
