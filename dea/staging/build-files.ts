// The stager, running as root, reads and writes a few files in a build folder that the app and
// its buildpack (untrusted, running as the staging user) wrote to. A link there must never
// make root read a host file into the droplet or the reply, nor write outside the folder:
// every folder on the way is checked to be a real folder, and files open with O_NOFOLLOW.
// The staging container has ended by then, so nothing swaps a file between check and open.
import { constants } from "node:fs";
import { lstat, mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { StagingError } from "./errors.js";

/** Largest file read back from a build (release YAML, the buildpack's name, a Procfile). */
const MAX_READ = 1024 * 1024;

async function kind(path: string): Promise<"missing" | "dir" | "file" | "other"> {
  try {
    const s = await lstat(path);
    return s.isDirectory() ? "dir" : s.isFile() ? "file" : "other";
  } catch {
    return "missing";
  }
}

function refuse(rel: string, why: string): never {
  throw new StagingError(
    "KILN_DEA_STAGING_RELEASE_FAILED",
    `the build's ${rel} ${why}; staging does not follow links`,
  );
}

/**
 * The text of `rel` (a/b/c) under `root`; "" when it does not exist. Refuses (RELEASE_FAILED)
 * a link or special file anywhere on the way, and a file over 1 MiB.
 */
export async function readBuildFile(root: string, rel: string): Promise<string> {
  const parts = rel.split("/");
  let path = root;
  for (let i = 0; i < parts.length; i++) {
    path = join(path, parts[i] as string);
    const k = await kind(path);
    if (k === "missing") return "";
    const last = i === parts.length - 1;
    if (last ? k !== "file" : k !== "dir")
      refuse(rel, last ? "is not a regular file" : "is not under real folders");
  }
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const { size } = await fh.stat();
    if (size > MAX_READ) refuse(rel, `is larger than ${MAX_READ} bytes`);
    return await fh.readFile("utf8");
  } finally {
    await fh.close();
  }
}

/** Writes `rel` (folder/file) under `root` anew: a link or file in the folder's place is removed first. */
export async function writeBuildFile(root: string, rel: string, text: string): Promise<void> {
  const [folder, name] = rel.split("/") as [string, string];
  const dir = join(root, folder);
  if ((await kind(dir)) !== "dir") {
    await rm(dir, { force: true, recursive: false }).catch(() => {});
    await mkdir(dir);
  }
  const file = join(dir, name);
  await rm(file, { force: true, recursive: true });
  const fh = await open(
    file,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o644,
  );
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
}
