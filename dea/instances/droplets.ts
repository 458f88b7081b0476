// The DEA's droplet cache: droplets (.tar.gz in the kiln_blobs object store) fetched once,
// checked against the SHA-1 the start request names, unpacked once per digest in the archive
// pool and kept on disk, bounded by their unpacked size (least recently used first out).
// Concurrent starts of one droplet share one download. An instance copies the unpacked tree
// into its own directory, so a cached droplet is never written to.
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { LRUCache } from "lru-cache";
import type { ObjectStore } from "nats";
import type { ArchiveWork } from "../staging/archive.js";
import { InstanceError } from "./errors.js";

/** What staging writes into every droplet at .kiln/droplet.json. */
export interface DropletMeta {
  startCommand: string;
  buildpack: string;
}

export interface CachedDroplet {
  /** The object store's digest of the droplet ("SHA-256=…"), the cache key. */
  digest: string;
  /** Hex SHA-1 of the droplet archive. */
  sha1: string;
  /** The unpacked tree; read only. */
  dir: string;
  meta: DropletMeta;
  bytes: number;
}

export interface DropletCacheOptions {
  blobs: ObjectStore;
  archive: ArchiveWork;
  /** Where droplets are unpacked (emptied at start: the cache is rebuilt per run). */
  dir: string;
  /** Total unpacked bytes kept; a droplet in use by a copy is removed once the copy is done. */
  maxBytes: number;
}

export class DropletCache {
  private readonly lru: LRUCache<string, CachedDroplet>;
  private readonly fetching = new Map<string, Promise<CachedDroplet>>();
  private readonly pins = new Map<string, number>();
  private readonly doomed = new Set<string>();
  private ready: Promise<void> | null = null;
  private seq = 0;

  constructor(private readonly options: DropletCacheOptions) {
    this.lru = new LRUCache<string, CachedDroplet>({
      maxSize: Math.max(1, options.maxBytes),
      sizeCalculation: (d) => Math.max(1, d.bytes),
      dispose: (d) => {
        if ((this.pins.get(d.dir) ?? 0) > 0) this.doomed.add(d.dir);
        else void rm(d.dir, { recursive: true, force: true });
      },
    });
  }

  /**
   * The unpacked droplet stored under `key`, pinned until `release` is called with its dir.
   * Throws KILN_DEA_INSTANCE_DROPLET_NOT_FOUND, _SHA1 or _FETCH.
   */
  async acquire(key: string, sha1: string): Promise<CachedDroplet> {
    this.ready ??= this.prepare();
    await this.ready;
    let info: Awaited<ReturnType<ObjectStore["info"]>>;
    try {
      info = await this.options.blobs.info(key);
    } catch (err) {
      throw new InstanceError(
        "KILN_DEA_INSTANCE_DROPLET_FETCH",
        `droplet ${key}: object store unreachable: ${(err as Error).message}`,
        err,
      );
    }
    if (info === null || info.deleted)
      throw new InstanceError(
        "KILN_DEA_INSTANCE_DROPLET_NOT_FOUND",
        `droplet ${key} is not in the object store`,
      );
    const digest = info.digest;
    let d = this.lru.get(digest);
    if (d === undefined) {
      let pending = this.fetching.get(digest);
      if (pending === undefined) {
        pending = this.fetch(key, digest).finally(() => this.fetching.delete(digest));
        this.fetching.set(digest, pending);
      }
      d = await pending;
    }
    if (sha1 !== "" && sha1.toLowerCase() !== d.sha1) {
      if (!this.pins.has(d.dir) && this.doomed.delete(d.dir))
        void rm(d.dir, { recursive: true, force: true });
      throw new InstanceError(
        "KILN_DEA_INSTANCE_DROPLET_SHA1",
        `droplet ${key} has SHA-1 ${d.sha1}, the start request names ${sha1}`,
      );
    }
    this.pins.set(d.dir, (this.pins.get(d.dir) ?? 0) + 1);
    return d;
  }

  release(d: CachedDroplet): void {
    const n = (this.pins.get(d.dir) ?? 1) - 1;
    if (n > 0) {
      this.pins.set(d.dir, n);
      return;
    }
    this.pins.delete(d.dir);
    if (this.doomed.delete(d.dir)) void rm(d.dir, { recursive: true, force: true });
  }

  private async prepare(): Promise<void> {
    await rm(this.options.dir, { recursive: true, force: true });
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
  }

  private async fetch(key: string, digest: string): Promise<CachedDroplet> {
    const n = ++this.seq;
    const archivePath = join(this.options.dir, `download-${n}.tar.gz`);
    const dir = join(this.options.dir, `droplet-${n}`);
    try {
      const obj = await this.options.blobs.get(key);
      if (obj === null)
        throw new InstanceError(
          "KILN_DEA_INSTANCE_DROPLET_NOT_FOUND",
          `droplet ${key} is not in the object store`,
        );
      const out = createWriteStream(archivePath, { mode: 0o600 });
      const reader = obj.data.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!out.write(value)) await new Promise<void>((r) => out.once("drain", () => r()));
      }
      out.end();
      await finished(out);
      const err = await obj.error;
      if (err) throw err;
      const digests = await this.options.archive.digestFile(archivePath);
      await this.options.archive.unpackPackage(archivePath, dir);
      const meta = await readMeta(dir);
      const d: CachedDroplet = { digest, sha1: digests.sha1, dir, meta, bytes: digests.bytes };
      const unpacked = await this.options.archive.sample({ dir });
      d.bytes = Math.max(d.bytes, unpacked.diskBytes);
      // Larger than the whole cache: served to the starts waiting for it, removed after their copies.
      if (d.bytes > this.options.maxBytes) this.doomed.add(dir);
      else this.lru.set(digest, d);
      return d;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      if (err instanceof InstanceError) throw err;
      throw new InstanceError(
        "KILN_DEA_INSTANCE_DROPLET_FETCH",
        `droplet ${key}: ${(err as Error)?.message ?? String(err)}`,
        err,
      );
    } finally {
      await rm(archivePath, { force: true });
    }
  }
}

async function readMeta(dir: string): Promise<DropletMeta> {
  let text: string;
  try {
    text = await readFile(join(dir, ".kiln", "droplet.json"), "utf8");
  } catch {
    return { startCommand: "", buildpack: "" };
  }
  try {
    const o = JSON.parse(text) as Partial<Record<keyof DropletMeta, unknown>>;
    return {
      startCommand: typeof o.startCommand === "string" ? o.startCommand : "",
      buildpack: typeof o.buildpack === "string" ? o.buildpack : "",
    };
  } catch {
    throw new InstanceError(
      "KILN_DEA_INSTANCE_DROPLET_FETCH",
      "the droplet's .kiln/droplet.json is not JSON",
    );
  }
}
