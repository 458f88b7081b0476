// One staging task of the DEA (dea.<id>.stage): the package from the object store, unpacked,
// then ONE container (a container start costs ~200 ms) running dea/buildpacks/driver.sh, which
// detects, compiles and releases; then the droplet, with .kiln/droplet.json, back into the
// object store under droplets/<sha256>. Every failure is a StageReply with a code, never a throw.
import { createHash, randomBytes } from "node:crypto";
import { constants, createReadStream, createWriteStream } from "node:fs";
import {
  access,
  chmod,
  chown,
  cp,
  lchown,
  lstat,
  mkdir,
  readdir,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import type { ObjectStore } from "nats";
import type { Logger } from "../../kernel/log.js";
import { projectRoot } from "../../kernel/paths.js";
import type { StageReply, StageRequest } from "../../messaging/codec.js";
import { startContainer } from "../container/container.js";
import { startPlain } from "../container/plain.js";
import type { Runc } from "../container/runc.js";
import { appMountPoint, type ContainerSpec, cpuSharesFor } from "../container/spec.js";
import { LineSplitter } from "../logs/lines.js";
import type { ArchiveWork } from "./archive.js";
import { readBuildFile, writeBuildFile } from "./build-files.js";
import { type StagingLimits, stagingDefaults, unpackLimitDefaults } from "./config.js";
import { type StagingCode, StagingError } from "./errors.js";
import { killTree } from "./kill-tree.js";
import { type DropletInfo, dropletInfoPath, parseProcfile, parseRelease } from "./release.js";

export interface StagingDeps {
  /** null: isolation none, the driver runs as a plain process (startPlain). */
  runc: Runc | null;
  archive: ArchiveWork;
  /** The kiln_blobs object store: packages in, droplets out. */
  blobs: ObjectStore;
  /** <dataDir>/staging: one folder per task, removed when it ends. */
  workDir: string;
  /** <dataDir>/buildpack-cache: one folder per app, kept between stagings. */
  cacheDir: string;
  uid: number;
  gid: number;
  /** Container ids start with this. */
  containerPrefix: string;
  log: Logger;
  /** Defaults for what a request leaves at 0 (config.ts). */
  limits?: Partial<StagingLimits>;
}

export type OutputStream = "stdout" | "stderr";

/** The built-in buildpacks in detection order (dea/buildpacks/<name>). */
export const builtinBuildpacks = ["node", "python", "go", "static", "procfile"] as const;

/** The built-in buildpacks and the driver, mounted read-only into every staging container. */
export const buildpacksDir = join(projectRoot, "dea", "buildpacks");

/** Where the driver finds things inside the container. */
const inside = {
  buildpacks: "/var/kiln/buildpacks",
  custom: "/var/kiln/buildpack",
  cache: "/var/kiln/cache",
  env: "/var/kiln/env",
} as const;

/** driver.sh's exit statuses. */
const driverCodes: Record<number, StagingCode> = {
  64: "KILN_DEA_STAGING_NO_BUILDPACK",
  65: "KILN_DEA_STAGING_BUILDPACK_UNKNOWN",
  66: "KILN_DEA_STAGING_COMPILE_FAILED",
  67: "KILN_DEA_STAGING_RELEASE_FAILED",
};

const MiB = 1024 * 1024;

/** Time spent in each step, ms, for the staged log line. */
interface Phases {
  fetch: number;
  unpack: number;
  run: number;
  pack: number;
  upload: number;
}

/**
 * Stages `req`: every line of the driver and the buildpack goes to `output` as it comes. An
 * abort of `signal` kills the staging (KILN_DEA_STAGING_ABORTED). The work folder is
 * removed whatever happens.
 */
export async function stage(
  deps: StagingDeps,
  req: StageRequest,
  output: (stream: OutputStream, text: string) => void,
  signal?: AbortSignal,
): Promise<StageReply> {
  const limits: StagingLimits = { ...stagingDefaults, ...deps.limits };
  const tail: string[] = [];
  const say = (stream: OutputStream, text: string): void => {
    tail.push(text);
    if (tail.length > limits.logTailLines) tail.shift();
    try {
      output(stream, text);
    } catch {
      // A listener's failure must not fail the staging.
    }
  };
  const id = `${deps.containerPrefix}stage-${tokenOf(req.taskId)}-${randomBytes(4).toString("hex")}`;
  const work = join(deps.workDir, id);
  const started = performance.now();
  const phases: Phases = { fetch: 0, unpack: 0, run: 0, pack: 0, upload: 0 };
  try {
    const staged = await run(deps, req, limits, id, work, say, phases, signal);
    const ms = Math.round(performance.now() - started);
    deps.log.info("staged", {
      app: req.app,
      task: req.taskId,
      buildpack: staged.detectedBuildpack,
      ms,
      phases,
    });
    return { ...staged, logTail: [...tail] };
  } catch (err) {
    const code: string = err instanceof StagingError ? err.code : "KILN_DEA_STAGING_FAILED";
    const message = err instanceof Error ? err.message : String(err);
    say("stderr", `staging failed: ${message} (${code})`);
    const ms = Math.round(performance.now() - started);
    deps.log.warn("staging_failed", { app: req.app, task: req.taskId, code, message, ms, phases });
    return {
      taskId: req.taskId,
      ok: false,
      dropletKey: "",
      dropletSha1: "",
      detectedBuildpack: "",
      startCommand: "",
      error: message,
      errorCode: code,
      logTail: [...tail],
    };
  } finally {
    await rm(work, { recursive: true, force: true }).catch(() => {});
  }
}

async function run(
  deps: StagingDeps,
  req: StageRequest,
  limits: StagingLimits,
  id: string,
  work: string,
  say: (stream: OutputStream, text: string) => void,
  phases: Phases,
  signal: AbortSignal | undefined,
): Promise<StageReply> {
  const aborted = (): void => {
    if (signal?.aborted) throw new StagingError("KILN_DEA_STAGING_ABORTED", "staging was stopped");
  };
  const diskBytes = (req.diskMb || limits.diskMb) * MiB;
  const buildpack = await chooseBuildpack(req.buildpack);
  // 0755: under isolation none the unprivileged driver must reach the build and env folders.
  await mkdir(work, { recursive: true, mode: 0o755 });
  await chmod(work, 0o755);
  const packagePath = join(work, "package.tgz");
  const build = join(work, "app");
  const envDir = join(work, "env");
  // The hash keeps apps whose ids differ only in characters tokenOf replaces apart.
  const cache = join(
    deps.cacheDir,
    `${tokenOf(req.app)}-${createHash("sha256").update(req.app).digest("hex").slice(0, 12)}`,
  );

  let t = performance.now();
  say("stdout", "-----> Downloading app package");
  await fetchPackage(deps.blobs, req.packageKey, packagePath);
  phases.fetch = Math.round(performance.now() - t);
  aborted();

  t = performance.now();
  const unpacked = await deps.archive.unpackPackage(packagePath, build, {
    maxBytes: Math.min(unpackLimitDefaults.maxBytes, diskBytes),
  });
  await rm(packagePath, { force: true });
  say("stdout", `-----> Unpacked ${unpacked.files} entries, ${unpacked.bytes} bytes`);
  await chownTree(build, deps.uid, deps.gid);
  await mkdir(cache, { recursive: true, mode: 0o755 });
  await chown(cache, deps.uid, deps.gid);
  await writeEnvDir(envDir, req.env);
  phases.unpack = Math.round(performance.now() - t);
  aborted();

  t = performance.now();
  const timeoutMs = req.timeoutMs || limits.timeoutMs;
  const exit = await runDriver(
    deps,
    req,
    limits,
    id,
    { build, cache, envDir, buildpack },
    say,
    timeoutMs,
    signal,
  );
  phases.run = Math.round(performance.now() - t);
  if (exit.aborted) throw new StagingError("KILN_DEA_STAGING_ABORTED", "staging was stopped");
  if (exit.timedOut)
    throw new StagingError(
      "KILN_DEA_STAGING_TIMEOUT",
      `staging took longer than ${timeoutMs} ms and was killed`,
    );
  if (exit.outOfMemory)
    throw new StagingError(
      "KILN_DEA_STAGING_OUT_OF_MEMORY",
      `staging went over its ${req.memoryMb || limits.memoryMb} MiB of memory and was killed`,
    );
  if (exit.status !== 0) {
    const code = exit.status === null ? undefined : driverCodes[exit.status];
    const why = exit.stderr.slice(-2).join("; ") || `the staging process ended with status ${exit.status}`;
    throw new StagingError(code ?? "KILN_DEA_STAGING_FAILED", why);
  }

  const detected = (await readBuildFile(build, ".kiln/staging/buildpack")).trim();
  const releaseText = await readBuildFile(build, ".kiln/staging/release.yml");
  await rm(join(build, ".kiln", "staging"), { recursive: true, force: true });
  const released = parseRelease(releaseText);
  if (released === null)
    throw new StagingError(
      "KILN_DEA_STAGING_RELEASE_FAILED",
      `bin/release of buildpack ${detected} printed YAML that is not a mapping`,
    );
  const procfile = parseProcfile(await readBuildFile(build, "Procfile"));
  const processTypes = { ...released, ...procfile };
  const startCommand = processTypes.web ?? "";
  if (startCommand === "")
    throw new StagingError(
      "KILN_DEA_STAGING_NO_START_COMMAND",
      `buildpack ${detected} gave no web command and the app has no Procfile with a web: line`,
    );
  const size = await treeBytes(build);
  if (size > diskBytes)
    throw new StagingError(
      "KILN_DEA_STAGING_DISK",
      `the staged app holds ${Math.ceil(size / MiB)} MiB, over its disk quota of ${diskBytes / MiB} MiB`,
    );
  const buildpackName = buildpack.kind === "custom" ? buildpack.path : detected;
  const info: DropletInfo = { startCommand, buildpack: buildpackName, processTypes };
  await writeBuildFile(build, dropletInfoPath, `${JSON.stringify(info, null, 2)}\n`);
  aborted();

  t = performance.now();
  const dropletPath = join(work, "droplet.tgz");
  const digests = await deps.archive.packDroplet(build, dropletPath);
  phases.pack = Math.round(performance.now() - t);
  t = performance.now();
  const dropletKey = `droplets/${digests.sha256}`;
  await uploadDroplet(deps.blobs, dropletKey, dropletPath);
  phases.upload = Math.round(performance.now() - t);
  say(
    "stdout",
    `-----> Droplet ${digests.sha256.slice(0, 12)}: ${digests.bytes} bytes, start: ${startCommand}`,
  );
  return {
    taskId: req.taskId,
    ok: true,
    dropletKey,
    dropletSha1: digests.sha1,
    detectedBuildpack: buildpackName,
    startCommand,
    error: "",
    errorCode: "",
    logTail: [],
  };
}

type ChosenBuildpack =
  | { kind: "detect" }
  | { kind: "builtin"; name: string }
  | { kind: "custom"; path: string };

/** The request's buildpack: "" detects, a built-in's name, or an absolute path to a buildpack folder. */
export async function chooseBuildpack(requested: string): Promise<ChosenBuildpack> {
  if (requested === "") return { kind: "detect" };
  if ((builtinBuildpacks as readonly string[]).includes(requested))
    return { kind: "builtin", name: requested };
  if (!requested.startsWith("/"))
    throw new StagingError(
      "KILN_DEA_STAGING_BUILDPACK_UNKNOWN",
      `buildpack "${requested}" is not one of ${builtinBuildpacks.join(", ")} nor an absolute path`,
    );
  try {
    if (!(await stat(requested)).isDirectory()) throw new Error("not a folder");
    await access(join(requested, "bin", "compile"), constants.X_OK);
    await access(join(requested, "bin", "release"), constants.X_OK);
  } catch {
    throw new StagingError(
      "KILN_DEA_STAGING_BUILDPACK_UNKNOWN",
      `buildpack ${requested} is not a folder with executable bin/compile and bin/release`,
    );
  }
  return { kind: "custom", path: requested };
}

interface DriverExit {
  status: number | null;
  outOfMemory: boolean;
  timedOut: boolean;
  aborted: boolean;
  /** Last stderr lines, for the failure's message. */
  stderr: string[];
}

interface DriverPaths {
  build: string;
  cache: string;
  envDir: string;
  buildpack: ChosenBuildpack;
}

const plainCopies = new Map<string, Promise<string>>();

/**
 * Under isolation none the driver runs as an unprivileged uid that may not be able to reach
 * Kiln's own folder (a checkout under a 0700 home, say); a copy of the buildpacks in the work
 * folder, which it does reach, serves instead. Made once per work folder and process.
 */
function plainBuildpacks(workDir: string): Promise<string> {
  let copy = plainCopies.get(workDir);
  if (copy === undefined) {
    const dest = join(workDir, ".buildpacks");
    copy = (async () => {
      await rm(dest, { recursive: true, force: true });
      await mkdir(workDir, { recursive: true, mode: 0o755 });
      await cp(buildpacksDir, dest, { recursive: true });
      await chmod(workDir, 0o755);
      return dest;
    })();
    copy.catch(() => plainCopies.delete(workDir));
    plainCopies.set(workDir, copy);
  }
  return copy;
}

/** Runs driver.sh once, in a container (runc) or as a plain process, to its end or its timeout. */
async function runDriver(
  deps: StagingDeps,
  req: StageRequest,
  limits: StagingLimits,
  id: string,
  paths: DriverPaths,
  say: (stream: OutputStream, text: string) => void,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<DriverExit> {
  const contained = deps.runc !== null;
  const at = contained
    ? { build: appMountPoint, cache: inside.cache, env: inside.env, buildpacks: inside.buildpacks }
    : {
        build: paths.build,
        cache: paths.cache,
        env: paths.envDir,
        buildpacks: await plainBuildpacks(deps.workDir),
      };
  const bp = paths.buildpack;
  const env: Record<string, string> = {
    ...req.env,
    TMPDIR: "/tmp",
    PATH: "/usr/local/bin:/usr/bin:/bin:/usr/lib/go/bin",
    KILN_SKIP_COMPILE: "",
    KILN_BUILD_DIR: at.build,
    KILN_CACHE_DIR: at.cache,
    KILN_ENV_DIR: at.env,
    KILN_BUILDPACKS: at.buildpacks,
    KILN_BUILDPACK:
      bp.kind === "detect" ? "" : bp.kind === "builtin" ? bp.name : contained ? inside.custom : bp.path,
  };
  if (contained) env.HOME = "/home/vcap";
  if (bp.kind === "custom") env.KILN_BUILDPACK_NAME = basename(bp.path);
  const memoryMiB = Math.max(8, req.memoryMb || limits.memoryMb);
  const spec: ContainerSpec = {
    id,
    appDir: paths.build,
    command: ["/bin/sh", `${at.buildpacks}/driver.sh`],
    env,
    uid: deps.uid,
    gid: deps.gid,
    memoryMiB,
    pids: limits.pids,
    cpuShares: cpuSharesFor(memoryMiB),
    readOnlyMounts: [
      { source: buildpacksDir, destination: inside.buildpacks },
      { source: paths.envDir, destination: inside.env },
      ...(bp.kind === "custom" ? [{ source: bp.path, destination: inside.custom }] : []),
    ],
    writableMounts: [{ source: paths.cache, destination: inside.cache }],
  };

  const stderrTail: string[] = [];
  const outLines = new LineSplitter((l) => say("stdout", l), limits.maxLineBytes);
  const errLines = new LineSplitter((l) => {
    stderrTail.push(l);
    if (stderrTail.length > 3) stderrTail.shift();
    say("stderr", l);
  }, limits.maxLineBytes);
  let timedOut = false;
  let wasAborted = false;
  let kill: () => void = () => {};
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  const onAbort = (): void => {
    wasAborted = true;
    kill();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal?.aborted) return { status: null, outOfMemory: false, timedOut, aborted: true, stderr: [] };
    let status: number | null;
    let outOfMemory = false;
    let streams: NodeJS.ReadableStream[];
    if (deps.runc !== null) {
      const runc = deps.runc;
      const c = await startContainer(runc, spec);
      kill = () => {
        runc.kill(id, "SIGKILL", true).catch(() => {});
      };
      if (timedOut || wasAborted) kill();
      streams = [c.stdout, c.stderr];
      c.stdout.on("data", (d: Buffer) => outLines.push(d));
      c.stderr.on("data", (d: Buffer) => errLines.push(d));
      const exit = await c.exited;
      status = exit.status;
      outOfMemory = exit.outOfMemory;
    } else {
      const p = startPlain(spec);
      kill = () => killTree(p.pid);
      if (timedOut || wasAborted) kill();
      streams = [p.stdout, p.stderr];
      p.stdout.on("data", (d: Buffer) => outLines.push(d));
      p.stderr.on("data", (d: Buffer) => errLines.push(d));
      status = await p.exited;
    }
    // The output ends with the driver, unless (isolation none) a process it left behind holds
    // the pipes: then it is read no longer than a moment after the driver's exit.
    const drained = Promise.all(streams.map((s) => finished(s).catch(() => {})));
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise((r) => (grace = setTimeout(r, 2000)))]);
    clearTimeout(grace);
    for (const s of streams) (s as Readable).destroy();
    outLines.end();
    errLines.end();
    return { status, outOfMemory, timedOut, aborted: wasAborted, stderr: stderrTail };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

async function fetchPackage(blobs: ObjectStore, key: string, dest: string): Promise<void> {
  let obj: Awaited<ReturnType<ObjectStore["get"]>>;
  try {
    obj = await blobs.get(key);
  } catch (err) {
    throw new StagingError(
      "KILN_DEA_STAGING_PACKAGE_MISSING",
      `the package ${key} could not be read from the object store: ${(err as Error)?.message ?? err}`,
      err,
    );
  }
  if (obj === null)
    throw new StagingError("KILN_DEA_STAGING_PACKAGE_MISSING", `the object store has no package ${key}`);
  try {
    await pipeline(
      Readable.fromWeb(obj.data as import("node:stream/web").ReadableStream),
      createWriteStream(dest),
    );
    const err = await obj.error;
    if (err instanceof Error) throw err;
  } catch (err) {
    throw new StagingError(
      "KILN_DEA_STAGING_FAILED",
      `downloading the package ${key} failed: ${(err as Error)?.message ?? err}`,
      err,
    );
  }
}

async function uploadDroplet(blobs: ObjectStore, key: string, path: string): Promise<void> {
  try {
    await blobs.put(
      { name: key },
      Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>,
    );
  } catch (err) {
    throw new StagingError(
      "KILN_DEA_STAGING_FAILED",
      `storing the droplet ${key} failed: ${(err as Error)?.message ?? err}`,
      err,
    );
  }
}

/** The request's environment as one file per variable, the ENV_DIR of bin/compile. */
async function writeEnvDir(dir: string, env: Record<string, string>): Promise<void> {
  await mkdir(dir, { mode: 0o755 });
  for (const [k, v] of Object.entries(env)) {
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) await writeFile(join(dir, k), v, { mode: 0o644 });
  }
}

/** Gives the unpacked package to the staging user (links themselves, never what they point at). */
async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  await lchown(root, uid, gid);
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory()) await chownTree(p, uid, gid);
    else await lchown(p, uid, gid);
  }
}

/** Bytes of the files under `root` (links counted as themselves). */
async function treeBytes(root: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else total += (await lstat(p)).size;
  }
  return total;
}

/** A request field as a piece of a container id or folder name. */
function tokenOf(s: string): string {
  const t = s.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 40);
  return t === "" || t.startsWith(".") ? `x${t}` : t;
}
