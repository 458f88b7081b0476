// Unpacks an application package (.tar.gz) into a new folder, refusing any entry that could
// write outside it or exhaust the disk. Runs inside the archive worker (archive-worker.ts).
// node-tar parses the format; every entry is checked here, in archive order, before it is
// written, and entries are written one at a time, so a refusal stops the tree where it is
// and the whole folder is then removed.
import { createReadStream, constants as fsc } from "node:fs";
import { link, lstat, mkdir, open, readdir, rm, symlink, unlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import type { UnpackLimits } from "./config.js";
import { StagingError } from "./errors.js";

export interface UnpackResult {
  /** Entries written (files, folders, links). */
  files: number;
  /** Bytes of file content written. */
  bytes: number;
}

/** Bytes of tar framing allowed per entry on top of its content: header, pax/long-name records. */
function framingPerEntry(limits: UnpackLimits): number {
  return 1536 + 2 * limits.maxPathLength;
}
// End-of-archive blocks padded to a 20-block record, plus one inflate chunk of slack: the
// inflated bytes are counted before the parser has read the header they carry.
const FRAMING_SLACK = 10240 + 64 * 1024;

/** Where each entry goes: folders and links seen so far, to check later entries against. */
interface EntryState {
  limits: UnpackLimits;
  entries: number;
  declaredBytes: number;
  /** Normalized relative paths of symbolic links in the archive so far. */
  links: Set<string>;
}

const fileTypes = new Set(["File", "OldFile", "ContiguousFile"]);

/** The segments of a relative entry path, without empty and `.` ones. */
function segments(p: string): string[] {
  return p.split("/").filter((s) => s !== "" && s !== ".");
}

/** The first symbolic link (from this archive) among the folders above `segs`, if any. */
function linkAbove(state: EntryState, segs: string[]): string | undefined {
  for (let i = 1; i < segs.length; i++) {
    const prefix = segs.slice(0, i).join("/");
    if (state.links.has(prefix)) return prefix;
  }
  return undefined;
}

/**
 * The rules, checked on each entry's header before anything of it is written. Returns the
 * entry's normalized relative path ("" for the root itself).
 */
export function checkEntry(
  state: EntryState,
  e: Pick<ReadEntry, "path" | "type" | "size" | "linkpath">,
): string {
  const { limits } = state;
  state.entries++;
  if (state.entries > limits.maxFiles) {
    throw new StagingError(
      "KILN_DEA_ARCHIVE_TOO_MANY_FILES",
      `the package holds more than ${limits.maxFiles} entries`,
    );
  }
  const raw = e.path;
  if (raw.length > limits.maxPathLength || (e.linkpath?.length ?? 0) > limits.maxPathLength) {
    throw new StagingError(
      "KILN_DEA_ARCHIVE_PATH_TOO_LONG",
      `entry ${raw.slice(0, 80)}… has a path or link target longer than ${limits.maxPathLength} characters`,
    );
  }
  if (raw.startsWith("/")) {
    throw new StagingError(
      "KILN_DEA_ARCHIVE_ABSOLUTE_PATH",
      `entry ${JSON.stringify(raw)} has an absolute path`,
    );
  }
  const segs = segments(raw);
  if (segs.includes("..")) {
    throw new StagingError("KILN_DEA_ARCHIVE_PATH_ESCAPE", `entry ${JSON.stringify(raw)} has a '..' segment`);
  }
  const through = linkAbove(state, segs);
  if (through !== undefined) {
    throw new StagingError(
      "KILN_DEA_ARCHIVE_PATH_ESCAPE",
      `entry ${JSON.stringify(raw)} runs through the symbolic link ${JSON.stringify(through)} of the same package`,
    );
  }
  const rel = segs.join("/");
  if (e.type === "SymbolicLink" || e.type === "Link") {
    const target = e.linkpath ?? "";
    if (target === "" || target.startsWith("/")) {
      throw new StagingError(
        "KILN_DEA_ARCHIVE_LINK_ESCAPE",
        `link ${JSON.stringify(raw)} points to ${JSON.stringify(target)}, which is not a path inside the package`,
      );
    }
    const tsegs = target.split("/").filter((s) => s !== "" && s !== ".");
    if (e.type === "SymbolicLink") {
      // Resolved from the link's own folder. `..` is allowed only as a leading run: the
      // folders above the link are real ones (see linkAbove), so climbing them is exact,
      // while a `..` after a name could climb out of wherever a symbolic link leads.
      const ups = tsegs.findIndex((s) => s !== "..");
      const climbs = ups === -1 ? tsegs.length : ups;
      if (tsegs.slice(climbs).includes("..") || climbs > segs.length - 1) {
        throw new StagingError(
          "KILN_DEA_ARCHIVE_LINK_ESCAPE",
          `symbolic link ${JSON.stringify(raw)} -> ${JSON.stringify(target)} points outside the package`,
        );
      }
    } else if (tsegs.includes("..") || tsegs.length === 0 || linkAbove(state, [...tsegs, ""]) !== undefined) {
      // A hard link names a path from the archive's root; it may not climb or run through a link.
      throw new StagingError(
        "KILN_DEA_ARCHIVE_LINK_ESCAPE",
        `hard link ${JSON.stringify(raw)} -> ${JSON.stringify(target)} points outside the package`,
      );
    }
  } else if (!fileTypes.has(e.type) && e.type !== "Directory") {
    throw new StagingError(
      "KILN_DEA_ARCHIVE_SPECIAL_FILE",
      `entry ${JSON.stringify(raw)} is a ${e.type}; only files, folders and links are accepted`,
    );
  }
  if (fileTypes.has(e.type)) {
    state.declaredBytes += e.size;
    if (!Number.isSafeInteger(e.size) || e.size < 0 || state.declaredBytes > limits.maxBytes) {
      throw new StagingError(
        "KILN_DEA_ARCHIVE_TOO_LARGE",
        `the package unpacks to more than ${limits.maxBytes} bytes`,
      );
    }
  }
  if (e.type === "SymbolicLink") state.links.add(rel);
  else state.links.delete(rel);
  return rel;
}

/** Counts the inflated tar stream and stops it once it outgrows what the entries account for. */
class InflatedCounter extends Transform {
  bytes = 0;
  constructor(
    private readonly state: EntryState,
    private readonly stop: (err: StagingError) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.bytes === 0 && chunk.length >= 2 && chunk[0] === 0x1f && chunk[1] === 0x8b) {
      done(
        new StagingError(
          "KILN_DEA_ARCHIVE_CORRUPT",
          "the package is compressed twice; upload a single .tar.gz",
        ),
      );
      return;
    }
    this.bytes += chunk.length;
    const { limits } = this.state;
    const allowed =
      Math.min(this.state.declaredBytes, limits.maxBytes) +
      framingPerEntry(limits) * (this.state.entries + 1) +
      FRAMING_SLACK;
    if (this.bytes > allowed) {
      const err = new StagingError(
        "KILN_DEA_ARCHIVE_TOO_LARGE",
        `the package inflates to more bytes than its entries declare (over ${allowed}); it is damaged or hostile`,
      );
      this.stop(err);
      done(err);
      return;
    }
    done(null, chunk);
  }
}

function asStagingError(err: unknown, archivePath: string): StagingError {
  if (err instanceof StagingError) return err;
  const e = err as NodeJS.ErrnoException & { tarCode?: string };
  if (
    e?.tarCode !== undefined ||
    e?.code === "Z_DATA_ERROR" ||
    e?.code === "Z_BUF_ERROR" ||
    e?.errno === -3
  ) {
    return new StagingError(
      "KILN_DEA_ARCHIVE_CORRUPT",
      `${archivePath} is not a readable .tar.gz: ${e.message}`,
      err,
    );
  }
  return new StagingError(
    "KILN_DEA_ARCHIVE_IO",
    `unpacking ${archivePath} failed: ${e?.message ?? String(err)}`,
    err,
  );
}

/**
 * Writes one checked entry; the folders above it are real folders this unpack made.
 * `stopped` rejects on a refusal: the entry's data may then never come (the gzip stream
 * failed in the middle of it), and waiting on the entry alone would never end.
 */
async function writeEntry(
  destDir: string,
  rel: string,
  entry: ReadEntry,
  stopped: Promise<never>,
): Promise<number> {
  const abs = resolve(destDir, rel);
  if (rel === "") {
    entry.resume();
    return 0;
  }
  await mkdir(dirname(abs), { recursive: true });
  // A later entry of the same path replaces an earlier one, as tar does; never write through it.
  const held = await lstat(abs).catch(() => undefined);
  if (held !== undefined && !(held.isDirectory() && entry.type === "Directory")) {
    if (held.isDirectory()) await rm(abs, { recursive: true });
    else await unlink(abs);
  }
  const mode = (entry.mode ?? 0o644) & 0o777; // no set-id or sticky bits from a package
  switch (entry.type) {
    case "Directory":
      await mkdir(abs, { recursive: true, mode: mode | 0o700 });
      entry.resume();
      return 0;
    case "SymbolicLink":
      await symlink(entry.linkpath as string, abs);
      entry.resume();
      return 0;
    case "Link":
      await link(resolve(destDir, segments(entry.linkpath as string).join("/")), abs);
      entry.resume();
      return 0;
    default: {
      const fh = await open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode | 0o600);
      let bytes = 0;
      try {
        const chunks = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        for (;;) {
          const next = await Promise.race([chunks.next(), stopped]);
          if (next.done === true) break;
          bytes += next.value.length;
          await fh.write(next.value);
        }
      } finally {
        await fh.close();
      }
      return bytes;
    }
  }
}

/** Makes `destDir` (its parents too); refuses one that already holds anything. */
async function freshDir(destDir: string): Promise<void> {
  await mkdir(destDir, { recursive: true });
  if ((await readdir(destDir)).length > 0) {
    throw new StagingError("KILN_DEA_ARCHIVE_DEST_NOT_EMPTY", `${destDir} already holds files`);
  }
}

/**
 * Unpacks the .tar.gz at `archivePath` into `destDir` (made if missing, refused if not empty).
 * On any refusal or failure `destDir` is removed and a StagingError thrown.
 */
export async function unpack(
  archivePath: string,
  destDir: string,
  limits: UnpackLimits,
): Promise<UnpackResult> {
  await freshDir(destDir);
  const state: EntryState = { limits, entries: 0, declaredBytes: 0, links: new Set() };
  let refusal: StagingError | undefined;
  let written = Promise.resolve();
  let files = 0;
  let bytes = 0;
  // Entries go through node-tar's parser (no decompression of its own: the package's gzip
  // layer is inflated and counted above it, and anything compressed twice is refused).
  const parser = new Parser({ strict: true, brotli: false, zstd: false });
  const counter = new InflatedCounter(state, (err) => {
    refusal ??= err;
  });
  // Its errors are read from the pipeline below; this listener keeps a refusal that comes after
  // the pipeline has settled (the parser still holds data) from being an unhandled 'error'.
  counter.on("error", () => {});
  let current: ReadEntry | undefined;
  let stop: (err: StagingError) => void = () => {};
  const stopped = new Promise<never>((_, reject) => {
    stop = reject;
  });
  stopped.catch(() => {}); // read only through the race in writeEntry
  let isStopped = false;
  const refuse = (err: unknown): void => {
    refusal ??= asStagingError(err, archivePath);
    if (isStopped) return;
    isStopped = true;
    stop(refusal);
    counter.destroy(refusal);
    // The parser would wait for the rest of the stream, and the entry being written for
    // data that will not come.
    parser.abort(refusal);
    current?.destroy();
  };
  parser.on("entry", (entry: ReadEntry) => {
    if (refusal !== undefined) {
      entry.resume();
      return;
    }
    let rel: string;
    try {
      rel = checkEntry(state, entry);
    } catch (err) {
      entry.resume();
      refuse(err);
      return;
    }
    // One entry at a time, in archive order: the entry's data waits in the parser (which
    // holds back the stream) until its turn.
    written = written.then(async () => {
      if (refusal !== undefined) {
        entry.resume();
        return;
      }
      current = entry;
      try {
        bytes += await writeEntry(destDir, rel, entry, stopped);
        files++;
      } catch (err) {
        entry.resume();
        refuse(err);
      } finally {
        current = undefined;
      }
    });
  });
  const parsed = new Promise<void>((done) => {
    parser.on("end", () => done());
    parser.on("error", (err: unknown) => {
      refuse(err);
      done();
    });
  });
  const source = pipeline(createReadStream(archivePath), createGunzip(), counter).then(
    () => true,
    (err: unknown) => {
      refuse(err);
      return false;
    },
  );
  counter.pipe(parser);
  // A failed source stops the parser where it is; its end will not come.
  if (await source) await parsed;
  await written;
  if (refusal !== undefined) {
    await rm(destDir, { recursive: true, force: true });
    throw refusal;
  }
  return { files, bytes };
}
