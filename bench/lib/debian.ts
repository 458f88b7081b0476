// The bench's own set-up: the load generator and the reference proxies come from Debian's
// packages, installed by the bench itself when missing (root only; otherwise it says how).
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { BenchError } from "./errors.js";

/** A command and the Debian package that provides it. */
export interface Tool {
  command: string;
  pkg: string;
}

export const routerBenchTools: readonly Tool[] = [
  { command: "wrk", pkg: "wrk" },
  { command: "nginx", pkg: "nginx-light" },
  { command: "haproxy", pkg: "haproxy" },
];

/** Absolute path of `cmd` on PATH (plus the sbin folders Debian puts daemons in), or undefined. */
export function which(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const p = join(dir, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

export interface EnsureResult {
  /** command → absolute path, for every tool now available. */
  found: Map<string, string>;
  /** Tools still missing (not root, or install disabled). */
  missing: Tool[];
  /** What the set-up did or could not do, one line each. */
  notes: string[];
}

/**
 * Makes the tools available: as root, one `apt-get update` then one `apt-get install -y` of
 * the missing packages (Debian's policy-rc.d keeps the packaged services from starting
 * where it is set; the bench never uses the system services either way). Not root, or with
 * `install` false: returns what is missing with a message saying how to install it.
 */
export function ensureTools(tools: readonly Tool[], install: boolean): EnsureResult {
  const found = new Map<string, string>();
  const lookUp = (): Tool[] => {
    const missing: Tool[] = [];
    for (const t of tools) {
      const p = which(t.command);
      if (p === undefined) missing.push(t);
      else found.set(t.command, p);
    }
    return missing;
  };
  let missing = lookUp();
  const notes: string[] = [];
  if (missing.length === 0) return { found, missing, notes };
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  const hint = `apt-get update && apt-get install -y ${pkgs.join(" ")}`;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!install) {
    notes.push(`missing ${missing.map((t) => t.command).join(", ")} (install disabled); to install: ${hint}`);
    return { found, missing, notes };
  }
  if (!isRoot) {
    notes.push(
      `missing ${missing.map((t) => t.command).join(", ")}; the bench installs them only as root. ` +
        `Run it once as root or install by hand: sudo ${hint}`,
    );
    return { found, missing, notes };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args: string[]): void => {
    process.stderr.write(`bench setup: apt-get ${args.join(" ")}\n`);
    const r = spawnSync("apt-get", args, { env, stdio: ["ignore", "inherit", "inherit"] });
    if (r.error !== undefined || r.status !== 0) {
      throw new BenchError(
        "KILN_BENCH_INSTALL_FAILED",
        `apt-get ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})`,
      );
    }
  };
  run(["update", "-qq"]);
  run(["install", "-y", "-qq", "--no-install-recommends", ...pkgs]);
  missing = lookUp();
  notes.push(`installed from Debian: ${pkgs.join(" ")}`);
  if (missing.length > 0)
    notes.push(`still missing after install: ${missing.map((t) => t.command).join(", ")}`);
  return { found, missing, notes };
}

/** First line of `cmd args` (stdout or stderr), e.g. a version string; "" when it fails. */
export function versionOf(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  const line = text.split("\n").find((l) => l.trim() !== "");
  return line?.trim() ?? "";
}
