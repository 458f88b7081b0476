// The files `kiln push` would upload from an app folder: relative path, mode, size and SHA-1
// (streamed, so a large file is never read whole), with .kilnignore/.cfignore honoured.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { CliError } from "../errors.js";
import { alwaysSkipped, IgnoreRules } from "./ignore.js";

export interface AppFile {
  /** Relative to the app folder, `/`-separated. */
  path: string;
  /** Where to read it (a symbolic link inside the folder is read through). */
  abs: string;
  /** Permission bits (0o644, 0o755, …). */
  mode: number;
  size: number;
  sha1: string;
}

export async function sha1File(path: string): Promise<string> {
  const hash = createHash("sha1");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

async function readRules(root: string): Promise<IgnoreRules> {
  const rules = new IgnoreRules();
  for (const name of [".cfignore", ".kilnignore"]) {
    try {
      rules.add(await readFile(join(root, name), "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw filesError(root, err);
    }
  }
  return rules;
}

function filesError(root: string, err: unknown): CliError {
  return new CliError("KILN_CLI_APP_FILES", `cannot read the app folder ${root}: ${(err as Error).message}`);
}

function inside(root: string, target: string): boolean {
  return target === root || target.startsWith(root + sep);
}

/** Every file to upload, sorted by path. */
export async function scanAppDir(dir: string): Promise<AppFile[]> {
  let root: string;
  try {
    root = await realpath(dir);
    if (!(await stat(root)).isDirectory()) throw new Error("not a folder");
  } catch (err) {
    throw filesError(dir, err);
  }
  const rules = await readRules(root);
  const files: AppFile[] = [];

  // `ancestors` are the real paths of the folders above: a link back up the tree is not a loop.
  const walk = async (absDir: string, relDir: string, ancestors: ReadonlySet<string>): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(absDir)).sort();
    } catch (err) {
      throw filesError(root, err);
    }
    for (const name of names) {
      if (alwaysSkipped(name)) continue;
      const rel = relDir === "" ? name : `${relDir}/${name}`;
      let abs = join(absDir, name);
      let st = await lstat(abs);
      if (st.isSymbolicLink()) {
        const target = await realpath(abs).catch(() => null);
        const targetStat = target === null ? null : await stat(target).catch(() => null);
        // An ignored link is left alone wherever it points.
        if (rules.ignores(rel, targetStat?.isDirectory() === true)) continue;
        if (target === null || targetStat === null) {
          throw new CliError("KILN_CLI_APP_FILES", `${rel} is a symbolic link to nothing (${abs})`);
        }
        if (!inside(root, target)) {
          throw new CliError(
            "KILN_CLI_APP_FILES",
            `${rel} is a symbolic link to ${target}, outside the app folder ${root}; copy the file in or ignore it`,
          );
        }
        abs = target;
        st = targetStat;
      }
      if (st.isDirectory()) {
        if (rules.ignores(rel, true) || ancestors.has(abs)) continue;
        await walk(abs, rel, new Set([...ancestors, abs]));
      } else if (st.isFile()) {
        if (rules.ignores(rel, false)) continue;
        files.push({ path: rel, abs, mode: st.mode & 0o777, size: st.size, sha1: await sha1File(abs) });
      }
      // Sockets, fifos and devices are not app files.
    }
  };
  await walk(root, "", new Set([root]));
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
