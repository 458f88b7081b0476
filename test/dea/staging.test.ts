// Staging end to end with real parts: each example is packed, put in a real nats-server's
// object store, staged by stage() in one real runc container, and its droplet unpacked and
// started in another container, answering HTTP on its port. Failures (a pip install that
// cannot succeed, a compile error, a timeout, a hostile package, no or an unknown buildpack)
// each give a failed reply with their code and log tail. Skipped where runc cannot run.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { lchown, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import t, { type Test } from "tap";
import { create, Header } from "tar";
import { startContainer, stopContainer } from "../../dea/container/container.js";
import { removeLeftovers } from "../../dea/container/leftovers.js";
import { startPlain } from "../../dea/container/plain.js";
import { probeIsolation } from "../../dea/container/probe.js";
import { Runc } from "../../dea/container/runc.js";
import { cpuSharesFor, ociConfig } from "../../dea/container/spec.js";
import { ArchiveWork } from "../../dea/staging/archive.js";
import { type DropletInfo, dropletInfoPath, launchArgv } from "../../dea/staging/release.js";
import { type StagingDeps, stage } from "../../dea/staging/stager.js";
import { createLogger } from "../../kernel/log.js";
import { projectRoot } from "../../kernel/paths.js";
import type { StageReply, StageRequest } from "../../messaging/codec.js";
import { OBJECT_STORE_BLOBS } from "../../messaging/subjects.js";
import { guardChildren } from "../helpers/children.js";
import { bodyOf } from "../helpers/http.js";
import { startTestNats } from "../helpers/nats.js";
import { freePort } from "../helpers/ports.js";

guardChildren(t);

const examples = join(projectRoot, "examples");
const base = await mkdtemp(join(tmpdir(), "kiln-staging-"));
// Under isolation none the unprivileged driver walks into the work folder.
chmodSync(base, 0o755);
t.teardown(() => rm(base, { recursive: true, force: true }));
const runc = new Runc({ root: join(base, "dea") });
const prefix = `kiln-s${process.pid}-`;
const skip = (await probeIsolation(runc)) ?? false;
if (skip !== false) t.comment(`runc containers skipped: ${skip}`);
t.teardown(async () => {
  if (skip === false) await removeLeftovers(runc, prefix);
});

const uid = 4100;
const nats = await startTestNats(t);
const conn = await nats.connect("dea");
const blobs = await conn.nc.jetstream().views.os(OBJECT_STORE_BLOBS);
const archive = new ArchiveWork({ maxThreads: 2 });
t.teardown(() => archive.close());
const logLines: Record<string, unknown>[] = [];
const log = createLogger("dea.staging", {
  level: "debug",
  write: (line) => {
    logLines.push(JSON.parse(line) as Record<string, unknown>);
  },
});

function deps(more: Partial<StagingDeps> = {}): StagingDeps {
  return {
    runc,
    archive,
    blobs,
    workDir: join(base, "staging"),
    cacheDir: join(base, "buildpack-cache"),
    uid,
    gid: uid,
    containerPrefix: prefix,
    log,
    ...more,
  };
}

/** Packs `dir` as an app package (.tar.gz) into the object store; returns its key. */
async function upload(dir: string): Promise<string> {
  const chunks: Buffer[] = [];
  const names = readdirSync(dir);
  for await (const c of create({ gzip: true, cwd: dir, portable: true }, names)) chunks.push(c as Buffer);
  return putPackage(Buffer.concat(chunks));
}

async function putPackage(bytes: Buffer): Promise<string> {
  const key = `packages/${randomBytes(6).toString("hex")}`;
  await blobs.putBlob({ name: key }, bytes);
  return key;
}

interface Staged {
  reply: StageReply;
  lines: string[];
  ms: number;
}

async function stageDir(
  dir: string,
  more: Partial<StageRequest> = {},
  d: StagingDeps = deps(),
  signal?: AbortSignal,
): Promise<Staged> {
  const packageKey = await upload(dir);
  const lines: string[] = [];
  const started = performance.now();
  const reply = await stage(
    d,
    {
      app: `app-${randomBytes(4).toString("hex")}`,
      taskId: randomBytes(4).toString("hex"),
      packageKey,
      buildpack: "",
      stack: "cflinuxfs4",
      env: {},
      memoryMb: 1024,
      diskMb: 1024,
      timeoutMs: 0,
      ...more,
    },
    (_stream, text) => lines.push(text),
    signal,
  );
  return { reply, lines, ms: Math.round(performance.now() - started) };
}

async function chownTree(root: string): Promise<void> {
  await lchown(root, uid, uid);
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory()) await chownTree(p);
    else await lchown(p, uid, uid);
  }
}

/** The droplet of `reply`, unpacked into a new folder owned by the app user; with its droplet.json. */
async function unpackDroplet(reply: StageReply): Promise<{ dir: string; info: DropletInfo }> {
  const bytes = await blobs.getBlob(reply.dropletKey);
  if (bytes === null) throw new Error(`no droplet ${reply.dropletKey}`);
  const file = join(base, `${randomBytes(4).toString("hex")}.tgz`);
  writeFileSync(file, bytes);
  const dir = join(base, "droplets", randomBytes(4).toString("hex"));
  mkdirSync(join(base, "droplets"), { recursive: true, mode: 0o755 });
  await archive.unpackPackage(file, dir);
  await rm(file);
  await chownTree(dir);
  const info = JSON.parse(readFileSync(join(dir, dropletInfoPath), "utf8")) as DropletInfo;
  return { dir, info };
}

const get = (port: number, path = "/"): Promise<string | null> => bodyOf(port, path);

async function poll(port: number, ms = 10_000): Promise<string | null> {
  const until = Date.now() + ms;
  for (;;) {
    const body = await get(port);
    if (body !== null || Date.now() > until) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the droplet's start command in a container with PORT set; the body of GET /. */
async function runDroplet(t: Test, reply: StageReply, name: string): Promise<string | null> {
  const { dir, info } = await unpackDroplet(reply);
  t.equal(info.startCommand, reply.startCommand, `${name}: droplet.json carries the start command`);
  const port = await freePort();
  const c = await startContainer(runc, {
    id: `${prefix}run-${name}`,
    appDir: dir,
    command: launchArgv(info.startCommand),
    env: { PORT: String(port) },
    uid,
    gid: uid,
    memoryMiB: 256,
    pids: 128,
    cpuShares: cpuSharesFor(256),
  });
  let out = "";
  c.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  c.stderr.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  try {
    const body = await poll(port);
    if (body === null) t.comment(`${name} output: ${out}`);
    return body;
  } finally {
    await stopContainer(runc, c, 2000);
  }
}

const times: Record<string, number> = {};

t.test("the container spec mounts writable folders read-write", async (t) => {
  const c = ociConfig({
    id: "spec-writable",
    appDir: "/srv/app",
    command: ["x"],
    env: {},
    uid: 2001,
    gid: 2001,
    memoryMiB: 64,
    pids: 8,
    cpuShares: 64,
    readOnlyMounts: [{ source: "/srv/bp", destination: "/var/bp" }],
    writableMounts: [{ source: "/srv/cache", destination: "/var/cache" }],
  });
  const cache = c.mounts.find((m) => m.destination === "/var/cache");
  t.ok(cache?.options.includes("rw") && cache.source === "/srv/cache", "the cache is bound read-write");
  t.ok(
    c.mounts.find((m) => m.destination === "/var/bp")?.options.includes("ro"),
    "the buildpack stays read-only",
  );
  t.throws(
    () => ociConfig({ ...ociConfigInput(), writableMounts: [{ source: "rel", destination: "/x" }] }),
    /writableMounts/,
  );
});

function ociConfigInput() {
  return {
    id: "spec-bad",
    appDir: "/srv/app",
    command: ["x"],
    env: {},
    uid: 2001,
    gid: 2001,
    memoryMiB: 64,
    pids: 8,
    cpuShares: 64,
  };
}

t.test("the examples stage and answer HTTP", { skip }, async (t) => {
  const cases: { name: string; dir: string; buildpack: string; more?: Partial<StageRequest> }[] = [
    { name: "node", dir: "node", buildpack: "node" },
    { name: "node-dep", dir: "node-dep", buildpack: "node" },
    { name: "python", dir: "python", buildpack: "python" },
    { name: "go", dir: "go", buildpack: "go", more: { app: "go-cached" } },
    { name: "static", dir: "static", buildpack: "static" },
    { name: "procfile", dir: "procfile", buildpack: "procfile" },
    {
      name: "custom-buildpack",
      dir: "custom-buildpack/app",
      buildpack: join(examples, "custom-buildpack", "buildpack"),
      more: { buildpack: join(examples, "custom-buildpack", "buildpack") },
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const { reply, lines, ms } = await stageDir(join(examples, c.dir), c.more);
      times[c.name] = ms;
      t.ok(reply.ok, `${c.name} staged: ${reply.errorCode} ${reply.error} ${lines.slice(-10).join(" | ")}`);
      if (!reply.ok) return;
      t.equal(reply.detectedBuildpack, c.buildpack);
      t.match(reply.dropletKey, /^droplets\/[0-9a-f]{64}$/);
      t.match(reply.dropletSha1, /^[0-9a-f]{40}$/);
      t.ok(reply.startCommand.length > 0, `start: ${reply.startCommand}`);
      if (c.name === "node-dep")
        t.ok(
          lines.some((l) => /npm ci/.test(l)),
          "npm ci ran",
        );
      const body = await runDroplet(t, reply, c.name);
      t.match(body ?? "", `hello from the ${c.name} example`, `${c.name} answers on its port`);
    });
  }
  t.comment(`staging times, ms: ${JSON.stringify(times)}`);
  const staged = logLines.filter((l) => l.event === "staged");
  t.comment(`phases, ms: ${JSON.stringify(staged.map((l) => [l.buildpack, l.phases]))}`);
});

t.test("a second staging of an app reuses its buildpack cache", { skip }, async (t) => {
  const { reply, ms, lines } = await stageDir(join(examples, "go"), { app: "go-cached" });
  t.ok(reply.ok, reply.error);
  t.comment(`go example restaged with a warm build cache in ${ms} ms (first: ${times.go} ms)`);
  t.ok(times.go === undefined || ms < times.go, "faster than the first");
  t.ok(lines.some((l) => /go build/.test(l)));
});

// The first staging in a test process is slower than the DEA's: its archive pool's first
// worker inherits tap's TypeScript loader (~1.8 s here against ~0.1 s for compiled code, see
// the phases' "unpack"), so the figure below is the best of three.
t.test("a dependency-free node app stages within a second", { skip }, async (t) => {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const { reply, ms } = await stageDir(join(examples, "node"));
    t.ok(reply.ok, reply.error);
    runs.push(ms);
  }
  const phases = logLines.filter((l) => l.event === "staged").slice(-3);
  t.comment(
    `node example staging, ms: ${runs.join(", ")}; phases ${JSON.stringify(phases.map((p) => p.phases))}`,
  );
  t.ok(Math.min(...runs) <= 1000, `best of three ${Math.min(...runs)} ms ≤ 1000 ms`);
});

/** A folder with `files` (path → content), for apps made up in a test. */
function appWith(name: string, files: Record<string, string>): string {
  const dir = join(base, "apps", name);
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

t.test("failures give a coded reply with the log tail", { skip }, async (t) => {
  await t.test("a pip install that cannot succeed", async (t) => {
    const dir = appWith("pip-fails", {
      "app.py": "print('never')\n",
      "requirements.txt": "kiln-no-such-package==1.0\n",
      "vendor/README": "no wheels here\n",
    });
    const { reply } = await stageDir(dir);
    t.notOk(reply.ok);
    t.equal(reply.errorCode, "KILN_DEA_STAGING_COMPILE_FAILED");
    t.match(reply.error, /pip could not install requirements.txt/);
    t.ok(
      reply.logTail.some((l) => /kiln-no-such-package/.test(l)),
      "pip's own complaint is in the tail",
    );
    t.ok(reply.logTail.length <= 20);
  });

  await t.test("a compile error", async (t) => {
    const dir = appWith("go-broken", {
      "go.mod": "module example.com/broken\n\ngo 1.19\n",
      "main.go": "package main\n\nfunc main() { this is not go }\n",
    });
    const { reply } = await stageDir(dir);
    t.equal(reply.errorCode, "KILN_DEA_STAGING_COMPILE_FAILED");
    t.ok(
      reply.logTail.some((l) => /main\.go:3/.test(l)),
      "the compiler's error is in the tail",
    );
  });

  await t.test("a timeout", async (t) => {
    const bp = appWith("slow-buildpack", {
      "bin/detect": "#!/bin/sh\necho slow\n",
      "bin/compile": "#!/bin/sh\necho compiling slowly\nsleep 30\n",
      "bin/release": "#!/bin/sh\necho '--- {}'\n",
    });
    for (const f of ["detect", "compile", "release"]) chmodSync(join(bp, "bin", f), 0o755);
    const dir = appWith("slow-app", { Procfile: "web: sleep 1\n" });
    const { reply, ms } = await stageDir(dir, { buildpack: bp, timeoutMs: 1500 });
    t.equal(reply.errorCode, "KILN_DEA_STAGING_TIMEOUT");
    t.ok(ms < 10_000, `killed after ${ms} ms`);
    t.ok(reply.logTail.includes("compiling slowly"));
  });

  await t.test("a hostile package", async (t) => {
    const header = new Header({
      path: "../escape.txt",
      type: "File",
      size: 4,
      mode: 0o644,
      mtime: new Date(),
    });
    header.encode();
    const tarball = Buffer.concat([
      header.block as Buffer,
      Buffer.from("evil"),
      Buffer.alloc(508),
      Buffer.alloc(1024),
    ]);
    const packageKey = await putPackage(gzipSync(tarball));
    const reply = await stage(
      deps(),
      {
        app: "hostile",
        taskId: "hostile-1",
        packageKey,
        buildpack: "",
        stack: "",
        env: {},
        memoryMb: 256,
        diskMb: 256,
        timeoutMs: 0,
      },
      () => {},
    );
    t.equal(reply.errorCode, "KILN_DEA_ARCHIVE_PATH_ESCAPE");
    t.ok(
      reply.logTail.some((l) => /KILN_DEA_ARCHIVE_PATH_ESCAPE/.test(l)),
      "the tail says why",
    );
  });

  await t.test("no buildpack detects, an unknown one is named, the package is missing", async (t) => {
    const dir = appWith("nothing", { "README.txt": "just text\n" });
    t.equal((await stageDir(dir)).reply.errorCode, "KILN_DEA_STAGING_NO_BUILDPACK");
    t.equal(
      (await stageDir(dir, { buildpack: "cobol" })).reply.errorCode,
      "KILN_DEA_STAGING_BUILDPACK_UNKNOWN",
    );
    t.equal((await stageDir(dir, { buildpack: base })).reply.errorCode, "KILN_DEA_STAGING_BUILDPACK_UNKNOWN");
    const request: StageRequest = {
      app: "missing",
      taskId: "missing-1",
      packageKey: "packages/none",
      buildpack: "",
      stack: "",
      env: {},
      memoryMb: 0,
      diskMb: 0,
      timeoutMs: 0,
    };
    const reply = await stage(deps(), request, () => {});
    t.equal(reply.errorCode, "KILN_DEA_STAGING_PACKAGE_MISSING");
  });

  await t.test("over the disk quota", async (t) => {
    const bp = appWith("fat-buildpack", {
      "bin/compile": '#!/bin/sh\nhead -c 3145728 /dev/zero >"$1/fat"\n',
      "bin/release": "#!/bin/sh\necho '--- {}'\n",
    });
    for (const f of ["compile", "release"]) chmodSync(join(bp, "bin", f), 0o755);
    const dir = appWith("fat-app", { Procfile: "web: sleep 1\n" });
    const { reply } = await stageDir(dir, { buildpack: bp, diskMb: 2 });
    t.equal(reply.errorCode, "KILN_DEA_STAGING_DISK");
    const big = appWith("big-package", { "index.html": "x".repeat(3 * 1024 * 1024) });
    t.equal(
      (await stageDir(big, { diskMb: 2 })).reply.errorCode,
      "KILN_DEA_ARCHIVE_TOO_LARGE",
      "a package over the quota is refused as it unpacks",
    );
  });
});

/** A custom buildpack whose compile runs `compile` (sh). */
function buildpackWith(name: string, compile: string): string {
  const bp = appWith(name, {
    "bin/compile": `#!/bin/sh\n${compile}\n`,
    "bin/release": "#!/bin/sh\necho '--- {}'\n",
  });
  for (const f of ["compile", "release"]) chmodSync(join(bp, "bin", f), 0o755);
  return bp;
}

t.test("a build's links are never followed by the stager", { skip }, async (t) => {
  const dir = appWith("linky-app", { Procfile: "web: sleep 1\n" });
  const procfileLink = buildpackWith("procfile-link", 'rm "$1/Procfile"; ln -s /etc/passwd "$1/Procfile"');
  const a = await stageDir(dir, { buildpack: procfileLink });
  t.equal(a.reply.errorCode, "KILN_DEA_STAGING_RELEASE_FAILED");
  t.match(a.reply.error, /Procfile is not a regular file/);
  t.notMatch(JSON.stringify(a.reply), /root:/, "nothing of the host's file reaches the reply");
  const kilnLink = buildpackWith(
    "kiln-link",
    'rm -rf "$1/.kiln"; mkdir -p /tmp/staging; ln -s /tmp "$1/.kiln"',
  );
  const b = await stageDir(dir, { buildpack: kilnLink });
  t.equal(b.reply.errorCode, "KILN_DEA_STAGING_RELEASE_FAILED");
  t.match(b.reply.error, /is not under real folders/);
});

t.test("out of memory, and a staging stopped by its signal", { skip }, async (t) => {
  const hog = buildpackWith("hog", "python3 -c 'b = b\"x\" * (512 * 1024 * 1024); print(len(b))'");
  const dir = appWith("hog-app", { Procfile: "web: sleep 1\n" });
  const oom = await stageDir(dir, { buildpack: hog, memoryMb: 64 });
  t.equal(oom.reply.errorCode, "KILN_DEA_STAGING_OUT_OF_MEMORY", oom.reply.error);
  const slow = buildpackWith("slow-abort", "echo waiting; sleep 30");
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 800);
  const stopped = await stageDir(dir, { buildpack: slow }, deps(), ac.signal);
  t.equal(stopped.reply.errorCode, "KILN_DEA_STAGING_ABORTED");
  t.ok(stopped.ms < 10_000, `stopped after ${stopped.ms} ms`);
});

t.test("output arrives line by line while the staging runs", { skip }, async (t) => {
  const bp = buildpackWith(
    "chatty",
    'echo first; head -c 100000 /dev/zero | tr "\\0" x; echo; sleep 1; echo last >&2',
  );
  const dir = appWith("chatty-app", { Procfile: "web: sleep 1\n" });
  const seen: { stream: string; text: string; at: number }[] = [];
  const packageKey = await upload(dir);
  const reply = await stage(
    deps(),
    {
      app: "chatty",
      taskId: "chatty-1",
      packageKey,
      buildpack: bp,
      stack: "",
      env: {},
      memoryMb: 256,
      diskMb: 256,
      timeoutMs: 0,
    },
    (stream, text) => seen.push({ stream, text, at: performance.now() }),
  );
  const end = performance.now();
  t.ok(reply.ok, reply.error);
  const first = seen.find((l) => l.text === "first");
  t.ok(first !== undefined && end - first.at > 500, "the first line came before the staging ended");
  const long = seen.filter((l) => /^x+$/.test(l.text));
  t.same(
    long.map((l) => l.text.length),
    [16384, 16384, 16384, 16384, 16384, 16384, 100000 - 6 * 16384],
    "a long line is passed on in 16 KiB pieces",
  );
  t.ok(
    seen.some((l) => l.stream === "stderr" && l.text === "last"),
    "stderr lines are marked so",
  );
});

t.test("two stagings at once", { skip }, async (t) => {
  const [a, b] = await Promise.all([stageDir(join(examples, "node")), stageDir(join(examples, "python"))]);
  t.ok(a.reply.ok && b.reply.ok, `${a.reply.error} ${b.reply.error}`);
  t.ok(
    a.reply.logTail.some((l) => l.startsWith("-----> Droplet")),
    "an ok reply carries its log tail too",
  );
  t.equal(a.reply.detectedBuildpack, "node");
  t.equal(b.reply.detectedBuildpack, "python");
});

t.test("isolation none: the same driver as a plain process", async (t) => {
  const { reply, ms } = await stageDir(join(examples, "node"), {}, deps({ runc: null }));
  t.ok(reply.ok, `${reply.errorCode} ${reply.error} ${reply.logTail.join(" | ")}`);
  t.comment(`node example staged without runc in ${ms} ms`);
  if (!reply.ok) return;
  const { dir, info } = await unpackDroplet(reply);
  chmodSync(join(base, "droplets"), 0o755);
  const port = await freePort();
  const p = startPlain({
    id: "plain-node",
    appDir: dir,
    command: launchArgv(info.startCommand),
    env: { PORT: String(port) },
    uid,
    gid: uid,
    memoryMiB: 512,
    pids: 64,
    cpuShares: 512,
  });
  try {
    t.match((await poll(port)) ?? "", "hello from the node example");
  } finally {
    p.kill("SIGKILL");
    await p.exited;
  }
});

t.test("isolation none: a timeout kills the whole process tree", async (t) => {
  const slow = buildpackWith("slow-plain", "echo waiting; sleep 30 & sleep 30");
  const dir = appWith("slow-plain-app", { Procfile: "web: sleep 1\n" });
  const { reply, ms } = await stageDir(dir, { buildpack: slow, timeoutMs: 1000 }, deps({ runc: null }));
  t.equal(reply.errorCode, "KILN_DEA_STAGING_TIMEOUT");
  t.ok(ms < 10_000, `killed after ${ms} ms`);
  // guardChildren fails the file if either sleep outlived the staging.
});

t.test("nothing is left behind", async (t) => {
  t.same(
    readdirSync(join(base, "staging")).filter((f) => f !== ".buildpacks"),
    [],
    "every work folder is removed (the buildpacks' copy for isolation none stays)",
  );
  if (skip === false) t.same(await runc.list(prefix), [], "no container is left");
});
