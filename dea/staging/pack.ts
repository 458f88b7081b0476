// Packs a staged app folder into a droplet (.tar.gz) whose bytes depend only on the tree:
// entries in sorted order, one fixed mtime, no owner or host metadata. So the same tree
// always gives the same digest, and the droplet's key in the object store is its digest.
// Runs inside the archive worker.
import { createWriteStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { create } from "tar";
import { DigestStream, type Digests } from "./digest.js";
import { StagingError } from "./errors.js";

/**
 * Every path under `root`, relative, folders before their contents, names sorted here:
 * libuv happens to list a folder sorted, but Node does not promise any order.
 */
async function sortedTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(rel === "" ? root : join(root, rel))).sort();
    for (const name of names) {
      const child = rel === "" ? name : `${rel}/${name}`;
      out.push(child);
      if ((await lstat(join(root, child))).isDirectory()) await walk(child);
    }
  };
  await walk("");
  return out;
}

const FIXED_MTIME = new Date(0);

/** Writes the droplet of `srcDir` to `outPath`; its digests are of the bytes written. */
export async function pack(srcDir: string, outPath: string): Promise<Digests> {
  try {
    const paths = await sortedTree(srcDir);
    const digest = new DigestStream();
    const tarball = create(
      { cwd: srcDir, gzip: true, portable: true, mtime: FIXED_MTIME, noDirRecurse: true, follow: false },
      paths,
    );
    await pipeline(tarball, digest, createWriteStream(outPath));
    return digest.result();
  } catch (err) {
    throw new StagingError(
      "KILN_DEA_ARCHIVE_IO",
      `packing ${srcDir} into ${outPath} failed: ${(err as Error)?.message ?? String(err)}`,
      err,
    );
  }
}
