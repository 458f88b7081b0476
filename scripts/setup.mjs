#!/usr/bin/env node
// Kiln's set-up: dependencies, protobuf codegen, native addon, TypeScript build,
// nats-server, runc and the buildpacks' Debian packages, each redone only when its inputs changed.
// Plain Node on purpose: it runs on a fresh clone before `npm ci`. Flags: --build (skip the
// Debian packages check), --force (redo every step), --quiet, --then ARGS... (run `kiln ARGS`
// in this same process afterwards, so `npm start` gets signals directly, with no shell in between).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const thenAt = process.argv.indexOf("--then");
const thenArgs = thenAt === -1 ? null : process.argv.slice(thenAt + 1);
const args = new Set(process.argv.slice(2, thenAt === -1 ? undefined : thenAt));
const force = args.has("--force");
const quiet = args.has("--quiet");
const stampFile = join(root, "node_modules", ".kiln-setup.json");
const started = Date.now();

function say(line) {
  if (!quiet) process.stderr.write(`kiln setup: ${line}\n`);
}

function fail(line) {
  process.stderr.write(`kiln setup: ${line}\n`);
  process.exit(1);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, {
    cwd: root,
    stdio: quiet ? ["ignore", "ignore", "inherit"] : "inherit",
    ...opts,
  });
  if (r.error) fail(`${cmd} could not start: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${argv.join(" ")} exited with ${r.status ?? r.signal}`);
}

/** Files under `dir` (relative to root) whose names pass `keep`, sorted, skipping generated trees. */
const addons = ["kiln_native.node", "kiln_uws.node"].map((n) => join(root, "build", "Release", n));

function listFiles(dir, keep) {
  const out = [];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === "node_modules" || e.name === "generated" || e.name.startsWith(".")) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (keep(e.name)) out.push(p);
    }
  };
  walk(join(root, dir));
  return out.sort();
}

/** Content hash of a set of files (names included), so moves and edits both count. */
function hashFiles(files) {
  const h = createHash("sha256");
  for (const f of files) {
    h.update(relative(root, f));
    h.update("\0");
    h.update(readFileSync(f));
    h.update("\0");
  }
  return h.digest("hex");
}

function nativeHash() {
  const inputs = [
    join(root, "binding.gyp"),
    ...listFiles("native/src", (n) => /\.(cc|h|hpp)$/.test(n)),
    ...listFiles("native/uws", (n) => /\.(c|cc|cpp|h)$/.test(n)),
    ...listFiles("native/fastpath", (n) => /\.(cc|h)$/.test(n)),
  ];
  return hashFiles(inputs) + process.version;
}

const stamps = (() => {
  try {
    return JSON.parse(readFileSync(stampFile, "utf8"));
  } catch {
    return {};
  }
})();

function saveStamps() {
  mkdirSync(dirname(stampFile), { recursive: true });
  writeFileSync(stampFile, `${JSON.stringify(stamps, null, 2)}\n`);
}

/** Runs `work` when the hash of its inputs differs from the last successful run. */
function step(name, inputsHash, work, outputsExist = () => true) {
  if (!force && stamps[name] === inputsHash && outputsExist()) return false;
  const t = Date.now();
  work();
  stamps[name] = inputsHash;
  saveStamps();
  say(`${name} done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return true;
}

// 1. npm dependencies, when the lockfile (or package.json) changed.
{
  const lock = join(root, "package-lock.json");
  // Only what decides node_modules counts: editing a script in package.json must not reinstall.
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const depFields = ["dependencies", "devDependencies", "optionalDependencies", "overrides", "allowScripts"];
  const inputs = createHash("sha256")
    .update(JSON.stringify(depFields.map((f) => pkg[f] ?? null)))
    .update(existsSync(lock) ? readFileSync(lock) : "")
    .digest("hex");
  const have = existsSync(join(root, "node_modules"));
  if (force || !have || stamps.deps !== inputs) {
    const t = Date.now();
    run("npm", [existsSync(lock) ? "ci" : "install", "--no-audit", "--no-fund"]);
    // npm ci wipes node_modules, stamps included: start again from an empty record.
    for (const k of Object.keys(stamps)) delete stamps[k];
    stamps.deps = inputs;
    // npm ci also built the addon (binding.gyp's implicit install script) from these sources.
    if (addons.every((a) => existsSync(a))) stamps.native = nativeHash();
    saveStamps();
    say(`dependencies installed in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
}

const bin = (name) => join(root, "node_modules", ".bin", name);

// 2. Protobuf codegen: static code and its typings from messaging/schemas/*.proto.
const protoFiles = listFiles("messaging/schemas", (n) => n.endsWith(".proto"));
const genDir = join(root, "messaging", "generated");
const genJs = join(genDir, "kiln.js");
step(
  "protobuf",
  hashFiles([...protoFiles, join(root, "scripts", "setup.mjs")]),
  () => {
    rmSync(genDir, { recursive: true, force: true });
    mkdirSync(genDir, { recursive: true });
    if (protoFiles.length === 0) {
      writeFileSync(genJs, "export default {};\n");
      writeFileSync(
        join(genDir, "kiln.d.ts"),
        "declare const root: Record<string, never>;\nexport default root;\n",
      );
      return;
    }
    // protobufjs has no "exports" map: the ES module wrapper must name the file.
    const pbjsArgs = [
      "-t",
      "static-module",
      "-w",
      "es6",
      "--dependency",
      "protobufjs/minimal.js",
      "--force-long",
    ];
    run(bin("pbjs"), [...pbjsArgs, "-o", genJs, ...protoFiles]);
    run(bin("pbts"), ["--no-comments", "-o", join(genDir, "kiln.d.ts"), genJs]);
  },
  () => existsSync(genJs),
);

// 3. The native addons (Kiln's own, and uWebSockets.js from native/uws), when their
// sources or binding.gyp changed.
step(
  "native",
  nativeHash(),
  // Through npm so that .npmrc's nodedir (Node's own headers, no download) applies.
  () => run("npm", ["exec", "--offline", "--", "node-gyp", "rebuild", "--jobs=max", "--loglevel=warn"]),
  () => addons.every((a) => existsSync(a)),
);

// 4. TypeScript to dist/, when any source or the tsconfig changed.
const tsDirs = ["router", "native", "control", "dea", "hm", "messaging", "cli", "kernel", "bench", "test"];
const tsInputs = [
  join(root, "tsconfig.json"),
  ...tsDirs.flatMap((d) => listFiles(d, (n) => n.endsWith(".ts"))),
  ...(existsSync(genJs) ? [genJs] : []),
];
step(
  "typescript",
  hashFiles(tsInputs),
  () => {
    rmSync(join(root, "dist"), { recursive: true, force: true });
    // The type check is `npm test`'s job (scripts/check.mjs); the build must still emit
    // when it fails so a broken check reports errors instead of a missing dist/.
    const r = spawnSync(
      process.execPath,
      [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "."],
      {
        cwd: root,
        stdio: "inherit",
      },
    );
    if (r.status !== 0 && !existsSync(join(root, "dist"))) fail("tsc produced no output");
    if (existsSync(genDir)) cpSync(genDir, join(root, "dist", "messaging", "generated"), { recursive: true });
  },
  () => existsSync(join(root, "dist", "cli", "main.js")),
);

// 5. nats-server, runc and the buildpacks' tools (Debian's packages), unless this is a build-only run.
function which(cmd) {
  // Debian puts nats-server in /usr/sbin, which is not on every user's PATH.
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/bin"]) {
    const p = join(dir, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {}
  }
  return null;
}

/** Whether pip runs under Debian's python3 (not a pyenv shim's). */
function hasPip() {
  return spawnSync("/usr/bin/python3", ["-m", "pip", "--version"], { stdio: "ignore" }).status === 0;
}

// Debian packages the kernel runs on: nats-server (the bus), runc (the DEA's containers), and
// what the built-in buildpacks stage with: Go, nginx (static sites) and pip (Python).
// Missing ones are installed in one apt-get run when root; otherwise the set-up says what to install.
const debianPackages = [
  { cmd: "nats-server", pkg: "nats-server" },
  { cmd: "runc", pkg: "runc" },
  { cmd: "go", pkg: "golang-go" },
  { cmd: "nginx", pkg: "nginx-light" },
  { cmd: "pip", pkg: "python3-pip", present: hasPip },
];
const present = (p) => (p.present === undefined ? which(p.cmd) !== null : p.present());
const missing = args.has("--build") ? [] : debianPackages.filter((p) => !present(p));
if (missing.length > 0) {
  const names = missing.map((p) => p.pkg).join(" ");
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) {
    fail(`${names} not installed. Install (Debian/Ubuntu: sudo apt-get install -y ${names}) and rerun.`);
  }
  say(`installing ${names} from Debian's packages`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  run("apt-get", ["update", "-qq"], { env });
  // Only what the commands need: runc recommends criu and its Python stack, which Kiln does not use.
  run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing.map((p) => p.pkg)], { env });
  for (const p of missing) {
    if (!present(p)) fail(`apt-get installed ${p.pkg} but ${p.cmd} is not usable`);
  }
}

say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

if (thenArgs !== null) {
  const { main } = await import(new URL("../dist/cli/main.js", import.meta.url).href);
  process.exitCode = await main(thenArgs);
}
