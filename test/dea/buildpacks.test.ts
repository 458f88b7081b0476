// The built-in buildpacks' detect and release on the examples, driven through the same
// dea/buildpacks/driver.sh the stager runs, here as a plain process on a copy of each example
// (compile skipped, so it is fast); detection order, a named and a custom buildpack, the
// driver's exit statuses; the python buildpack installing a vendored wheel offline; and
// that every script is committed executable.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { parseProcfile, parseRelease } from "../../dea/staging/release.js";
import { buildpacksDir, builtinBuildpacks } from "../../dea/staging/stager.js";
import { projectRoot } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

const root = projectRoot;
const examples = join(root, "examples");
const sandbox = mkdtempSync(join(tmpdir(), "kiln-buildpacks-"));
t.teardown(() => rmSync(sandbox, { recursive: true, force: true }));
let n = 0;

interface DriverRun {
  status: number | null;
  stdout: string;
  stderr: string;
  buildpack: string;
  release: Record<string, string> | null;
  dir: string;
}

/** Runs driver.sh on a copy of `app` (a folder, or files to write). */
function drive(app: string | Record<string, string>, buildpack = "", compile = false): DriverRun {
  const dir = join(sandbox, `app-${n++}`);
  if (typeof app === "string") cpSync(app, dir, { recursive: true });
  else
    for (const [f, text] of Object.entries(app)) {
      mkdirSync(join(dir, f, ".."), { recursive: true });
      writeFileSync(join(dir, f), text);
    }
  mkdirSync(join(dir, "..", `env-${n}`), { recursive: true });
  const r = spawnSync("/bin/sh", [join(buildpacksDir, "driver.sh")], {
    cwd: dir,
    encoding: "utf8",
    env: {
      PATH: "/usr/local/bin:/usr/bin:/bin:/usr/lib/go/bin",
      HOME: dir,
      KILN_BUILD_DIR: dir,
      KILN_CACHE_DIR: join(sandbox, `cache-${n}`),
      KILN_ENV_DIR: join(dir, "..", `env-${n}`),
      KILN_BUILDPACKS: buildpacksDir,
      KILN_BUILDPACK: buildpack,
      KILN_SKIP_COMPILE: compile ? "" : "1",
    },
  });
  const read = (f: string): string => {
    try {
      return readFileSync(join(dir, ".kiln", "staging", f), "utf8");
    } catch {
      return "";
    }
  };
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    buildpack: read("buildpack").trim(),
    release: r.status === 0 ? parseRelease(read("release.yml")) : null,
    dir,
  };
}

t.test("each built-in detects its example and releases its web command", async (t) => {
  const cases: [string, string, string | undefined][] = [
    ["node", "node", "node server.js"],
    ["node-dep", "node", "node server.js"],
    ["python", "python", "python3 app.py"],
    ["go", "go", "./bin/hello-go"],
    ["static", "static", "sh .nginx/start.sh"],
    ["procfile", "procfile", undefined],
  ];
  for (const [example, buildpack, web] of cases) {
    const r = drive(join(examples, example));
    t.equal(r.status, 0, `${example}: ${r.stderr}`);
    t.equal(r.buildpack, buildpack, `${example} is detected as ${buildpack}`);
    t.equal(r.release?.web, web, `${example}'s release`);
    t.match(r.stdout, `-----> Detected ${buildpack}`);
  }
  const procfile = parseProcfile(readFileSync(join(examples, "procfile", "Procfile"), "utf8"));
  t.match(procfile.web ?? "", /^node -e/, "the procfile example's web line");
});

t.test("detection order: node, python, go, static, procfile", async (t) => {
  t.same(builtinBuildpacks, ["node", "python", "go", "static", "procfile"]);
  const all = {
    "package.json": "{}",
    "app.py": "",
    "go.mod": "module x\n",
    "index.html": "",
    Procfile: "web: x\n",
  };
  t.equal(drive(all).buildpack, "node");
  const { "package.json": _n, ...noNode } = all;
  t.equal(drive(noNode).buildpack, "python");
  const { "app.py": _p, ...noPython } = noNode;
  t.equal(drive(noPython).buildpack, "go");
  const { "go.mod": _g, ...noGo } = noPython;
  t.equal(drive(noGo).buildpack, "static");
  t.equal(drive({ Procfile: "web: x\n" }).buildpack, "procfile");
  t.equal(drive({ Procfile: "worker: x\n" }).status, 64, "a Procfile without web: is no app");
  t.equal(drive({ "requirements.txt": "" }).buildpack, "python");
});

t.test("node's start command: scripts.start, main, server.js, index.js", async (t) => {
  const web = (files: Record<string, string>) => drive(files, "node").release?.web;
  t.equal(web({ "package.json": '{"scripts":{"start":"node a.js"},"main":"b.js"}' }), "node a.js");
  t.equal(web({ "package.json": '{"main":"b.js"}', "server.js": "" }), "node b.js");
  t.equal(web({ "package.json": "{}", "server.js": "", "index.js": "" }), "node server.js");
  t.equal(web({ "package.json": "{}", "index.js": "" }), "node index.js");
  t.same(drive({ "package.json": "{}" }, "node").release, {}, "nothing to start: no default");
});

t.test("a named or custom buildpack skips detection; bad ones are refused", async (t) => {
  const named = drive(join(examples, "node"), "static");
  t.equal(named.status, 0);
  t.equal(named.buildpack, "static", "the named buildpack, though node would detect");
  t.match(named.stdout, "-----> Using buildpack static");
  const custom = drive(
    join(examples, "custom-buildpack", "app"),
    join(examples, "custom-buildpack", "buildpack"),
    true,
  );
  t.equal(custom.status, 0, custom.stderr);
  t.equal(custom.buildpack, "buildpack");
  t.match(readFileSync(join(custom.dir, "index.html"), "utf8"), "hello from the custom-buildpack example");
  t.match(custom.release?.web ?? "", /http\.server/);
  t.equal(drive({ "a.txt": "" }, "cobol").status, 65, "an unknown name");
  t.equal(drive({ "a.txt": "" }, sandbox).status, 65, "a folder that is no buildpack");
  const none = drive({ "a.txt": "" });
  t.equal(none.status, 64, "nothing detects");
  t.match(none.stderr, /no buildpack detected this app/);
});

t.test("compile failures exit 66, release failures 67", async (t) => {
  const bp = join(sandbox, "bad-bp");
  mkdirSync(join(bp, "bin"), { recursive: true });
  writeFileSync(join(bp, "bin", "compile"), "#!/bin/sh\necho broken >&2\nexit 3\n", { mode: 0o755 });
  writeFileSync(join(bp, "bin", "release"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
  const r = drive({ "a.txt": "" }, bp, true);
  t.equal(r.status, 66);
  t.match(r.stderr, /bin\/compile of buildpack bad-bp failed with status 3/);
  t.equal(drive({ "a.txt": "" }, bp, false).status, 67);
});

/** A pure-Python wheel, written by hand (a zip with the package and its dist-info). */
function wheel(dir: string): void {
  const src = join(sandbox, "wheel-src");
  mkdirSync(join(src, "kilnhello"), { recursive: true });
  mkdirSync(join(src, "kilnhello-1.0.dist-info"), { recursive: true });
  writeFileSync(join(src, "kilnhello", "__init__.py"), 'GREETING = "hello from a vendored wheel"\n');
  writeFileSync(
    join(src, "kilnhello-1.0.dist-info", "METADATA"),
    "Metadata-Version: 2.1\nName: kilnhello\nVersion: 1.0\n",
  );
  writeFileSync(
    join(src, "kilnhello-1.0.dist-info", "WHEEL"),
    "Wheel-Version: 1.0\nGenerator: kiln-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
  );
  writeFileSync(
    join(src, "kilnhello-1.0.dist-info", "RECORD"),
    "kilnhello/__init__.py,,\nkilnhello-1.0.dist-info/METADATA,,\nkilnhello-1.0.dist-info/WHEEL,,\nkilnhello-1.0.dist-info/RECORD,,\n",
  );
  mkdirSync(dir, { recursive: true });
  execFileSync(
    "/usr/bin/python3",
    [
      "-m",
      "zipfile",
      "-c",
      join(dir, "kilnhello-1.0-py3-none-any.whl"),
      "kilnhello",
      "kilnhello-1.0.dist-info",
    ],
    { cwd: src },
  );
}

t.test("python installs vendored requirements offline, on PYTHONPATH through .profile.d", async (t) => {
  const app = join(sandbox, "py-src");
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, "requirements.txt"), "kilnhello==1.0\n");
  writeFileSync(join(app, "app.py"), "import kilnhello\nprint(kilnhello.GREETING)\n");
  wheel(join(app, "vendor"));
  const r = drive(app, "", true);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, "offline, from vendor/");
  const out = execFileSync("/bin/sh", ["-c", ". ./.profile.d/python.sh && /usr/bin/python3 app.py"], {
    cwd: r.dir,
    encoding: "utf8",
  });
  t.equal(out.trim(), "hello from a vendored wheel");
});

t.test("release YAML and Procfile parsing", async (t) => {
  t.same(parseRelease("---\ndefault_process_types:\n  web: 'node a.js'\n  worker: x\n"), {
    web: "node a.js",
    worker: "x",
  });
  t.same(parseRelease(""), {}, "no output: no defaults");
  t.same(parseRelease("--- {}\n"), {});
  t.equal(parseRelease("- a list\n"), null, "not a mapping");
  t.equal(parseRelease("default_process_types: [a]\n"), null);
  t.equal(parseRelease("a: [unclosed\n"), null, "not YAML");
  t.same(parseProcfile("web: node a.js --x=1\n# note\nworker:  run  \nbad line\n"), {
    web: "node a.js --x=1",
    worker: "run",
  });
});

t.test("every buildpack script is committed executable", async (t) => {
  const listed = execFileSync(
    "git",
    ["ls-files", "-s", "dea/buildpacks", "examples/custom-buildpack/buildpack"],
    {
      cwd: root,
      encoding: "utf8",
    },
  );
  const scripts = listed
    .trim()
    .split("\n")
    .filter((l) => /\/bin\/(detect|compile|release)$|driver\.sh$/.test(l));
  t.ok(scripts.length >= 5 * 3 + 4, `${scripts.length} scripts`);
  for (const l of scripts) t.match(l, /^100755 /, l.split("\t")[1] ?? l);
});
