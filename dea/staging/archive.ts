// Archive work of one DEA (unpack a package, pack a droplet, digest a file) in a small
// piscina pool, so a 1 GiB package never blocks the DEA's event loop. One ArchiveWork per
// DEA: its pool starts on first use and is closed with the DEA.
// Packages arrive as .tar.gz (the format the Cloud Controller stores them in); droplets
// leave as .tar.gz keyed by their SHA-256.
import { Piscina } from "piscina";
import { compiledSibling } from "../../kernel/paths.js";
import type { Sample, SampleTask } from "../instances/sample.js";
import type { ArchiveReply, ArchiveTask, ArchiveValue } from "./archive-worker.js";
import {
  type ArchivePoolOptions,
  archivePoolDefaults,
  type UnpackLimits,
  unpackLimitDefaults,
} from "./config.js";
import type { Digests } from "./digest.js";
import { StagingError } from "./errors.js";
import type { UnpackResult } from "./unpack.js";

export type { ArchivePoolOptions, UnpackLimits } from "./config.js";
export type { Digests } from "./digest.js";
export type { UnpackResult } from "./unpack.js";

export class ArchiveWork {
  private pool: Piscina<ArchiveTask, ArchiveReply<ArchiveValue>> | undefined;
  private closed = false;
  private readonly options: ArchivePoolOptions;

  constructor(options: Partial<ArchivePoolOptions> = {}) {
    this.options = { ...archivePoolDefaults, ...options };
  }

  /**
   * Unpacks the package at `archivePath` (.tar.gz) into `destDir`, which must be missing or
   * empty. Refuses, with a StagingError and `destDir` removed, any package that breaks a rule
   * of unpack.ts or a limit (defaults in config.ts).
   */
  unpackPackage(
    archivePath: string,
    destDir: string,
    limits: Partial<UnpackLimits> = {},
  ): Promise<UnpackResult> {
    const full: UnpackLimits = { ...unpackLimitDefaults, ...limits };
    return this.run<UnpackResult>({ op: "unpack", archivePath, destDir, limits: full });
  }

  /** Packs `srcDir` into the droplet `outPath` (.tar.gz, same tree → same bytes) and digests it. */
  packDroplet(srcDir: string, outPath: string): Promise<Digests> {
    return this.run<Digests>({ op: "pack", srcDir, outPath });
  }

  /** SHA-256 and SHA-1 of a file, and its size. */
  digestFile(path: string): Promise<Digests> {
    return this.run<Digests>({ op: "digest", path });
  }

  /** Usage of an instance: memory and CPU time (cgroup or /proc) and its directory's size on disk. */
  sample(task: SampleTask): Promise<Sample> {
    return this.run<Sample>({ op: "sample", ...task });
  }

  /** Waits for running tasks, then stops the workers; later calls are refused. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  private async run<T extends ArchiveValue>(task: ArchiveTask): Promise<T> {
    if (this.closed) throw new StagingError("KILN_DEA_ARCHIVE_IO", "the DEA's archive pool is closed");
    this.pool ??= new Piscina({
      filename: compiledSibling(import.meta.url, "archive-worker.js"),
      minThreads: 0,
      maxThreads: this.options.maxThreads,
      idleTimeout: this.options.idleTimeoutMs,
      // The worker is compiled JavaScript: a TypeScript loader the parent runs under (tests)
      // would only add seconds to each worker's start.
      execArgv: [],
    });
    const reply = await this.pool.run(task);
    if (!reply.ok) throw new StagingError(reply.code, reply.message);
    return reply.value as T;
  }
}
