// The archive pool's worker: runs one unpack, pack, digest or usage-sample task off the DEA's
// event loop.
// Piscina loads the compiled file (dist/dea/staging/archive-worker.js). Failures come back as
// a code and a message (a thrown error would lose its code crossing the thread boundary);
// archive.ts turns them into a StagingError again.

import { type Sample, type SampleTask, sample } from "../instances/sample.js";
import type { UnpackLimits } from "./config.js";
import { type Digests, digest } from "./digest.js";
import { type StagingCode, StagingError } from "./errors.js";
import { pack } from "./pack.js";
import { type UnpackResult, unpack } from "./unpack.js";

export type ArchiveTask =
  | { op: "unpack"; archivePath: string; destDir: string; limits: UnpackLimits }
  | { op: "pack"; srcDir: string; outPath: string }
  | { op: "digest"; path: string }
  | ({ op: "sample" } & SampleTask);

export type ArchiveReply<T> = { ok: true; value: T } | { ok: false; code: StagingCode; message: string };

export type ArchiveValue = UnpackResult | Digests | Sample;

export default async function run(task: ArchiveTask): Promise<ArchiveReply<ArchiveValue>> {
  try {
    switch (task.op) {
      case "unpack":
        return { ok: true, value: await unpack(task.archivePath, task.destDir, task.limits) };
      case "pack":
        return { ok: true, value: await pack(task.srcDir, task.outPath) };
      case "digest":
        return { ok: true, value: await digest(task.path) };
      case "sample":
        return { ok: true, value: await sample(task) };
    }
  } catch (err) {
    if (err instanceof StagingError) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: "KILN_DEA_ARCHIVE_IO", message: (err as Error)?.message ?? String(err) };
  }
}
