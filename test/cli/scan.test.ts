// The file scan of an app folder (real temp folders) and the package stream built from it,
// unpacked again with tar and compared.
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import t from "tap";
import { Parser, type ReadEntry } from "tar";
import { packageStream, RESOURCES_ENTRY } from "../../cli/push/package.js";
import { type AppFile, scanAppDir } from "../../cli/push/scan.js";
import { KilnError } from "../../kernel/errors.js";

const sha1 = (data: string | Buffer) => createHash("sha1").update(data).digest("hex");

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-scan-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), body);
  }
  return dir;
}

const paths = (files: AppFile[]) => files.map((f) => f.path);

t.test("relative paths, sizes, modes and SHA-1s, sorted", async (t) => {
  const dir = tree({ "b.txt": "bee", "a/z.js": "zed", "a/b/c.txt": "" });
  chmodSync(join(dir, "a/z.js"), 0o755);
  const files = await scanAppDir(dir);
  t.strictSame(paths(files), ["a/b/c.txt", "a/z.js", "b.txt"]);
  const z = files[1];
  t.equal(z?.mode, 0o755);
  t.equal(z?.size, 3);
  t.equal(z?.sha1, sha1("zed"));
  t.equal(files[0]?.sha1, sha1(""));
});

t.test(".kilnignore and .cfignore are honoured; .git and .kiln* always skipped", async (t) => {
  const dir = tree({
    ".git/HEAD": "ref",
    ".kilnignore": "*.log\n!keep.log\n/tmp/\n",
    ".cfignore": "secret.txt\n",
    ".kiln/config.json": "{}",
    "app.js": "x",
    "debug.log": "x",
    "keep.log": "x",
    "tmp/a": "x",
    "src/tmp/b": "x",
    "secret.txt": "x",
    "node_modules/m/index.js": "x",
  });
  t.strictSame(paths(await scanAppDir(dir)), ["app.js", "keep.log", "node_modules/m/index.js", "src/tmp/b"]);
});

t.test("node_modules goes only when ignored", async (t) => {
  const dir = tree({ ".cfignore": "node_modules\n", "node_modules/m/index.js": "x", "app.js": "x" });
  t.strictSame(paths(await scanAppDir(dir)), ["app.js"]);
});

t.test("a link inside the folder is read through; one outside is refused", async (t) => {
  const dir = tree({ "real.txt": "real", "sub/x.txt": "x" });
  symlinkSync("real.txt", join(dir, "link.txt"));
  symlinkSync("sub", join(dir, "linkdir"));
  symlinkSync("..", join(dir, "sub", "up"));
  const files = await scanAppDir(dir);
  t.strictSame(
    paths(files),
    ["link.txt", "linkdir/x.txt", "real.txt", "sub/x.txt"],
    "a folder link is walked as its own path; a link back up is not a loop",
  );
  t.equal(files[0]?.sha1, sha1("real"));
  t.equal(files[0]?.mode, 0o644, "the target's mode");

  const outside = tree({ passwd: "secret" });
  symlinkSync(join(outside, "passwd"), join(dir, "escape"));
  try {
    await scanAppDir(dir);
    t.fail("scanned");
  } catch (err) {
    t.ok(err instanceof KilnError);
    t.equal((err as KilnError).code, "KILN_CLI_APP_FILES");
    t.match((err as Error).message, /escape is a symbolic link to .*outside the app folder/);
  }
});

t.test("a link to outside that is ignored is not refused", async (t) => {
  const dir = tree({ ".kilnignore": "escape\n", a: "a" });
  symlinkSync("/etc", join(dir, "escape"));
  t.strictSame(paths(await scanAppDir(dir)), ["a"]);
});

t.test("a missing folder is a coded error", async (t) => {
  await t.rejects(scanAppDir("/nonexistent/kiln/app"), { code: "KILN_CLI_APP_FILES" });
});

async function unpack(
  stream: NodeJS.ReadableStream,
): Promise<{ path: string; mode: number; body: Buffer }[]> {
  const out: { path: string; mode: number; body: Buffer }[] = [];
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      const chunks: Buffer[] = [];
      entry.on("data", (c: Buffer) => chunks.push(c));
      entry.on("end", () =>
        out.push({ path: entry.path, mode: entry.mode ?? 0, body: Buffer.concat(chunks) }),
      );
    },
  });
  await pipeline(stream, parser);
  return out;
}

t.test("the package: resources entry first, then only the unmatched files", async (t) => {
  const long = `${"deep/".repeat(30)}file.txt`; // over tar's 100-byte name field: needs a PAX header
  const big = Buffer.alloc(300_000, 7);
  const dir = tree({ "a.txt": "alpha", "held.txt": "held", empty: "", [long]: "long" });
  writeFileSync(join(dir, "big.bin"), big);
  chmodSync(join(dir, "a.txt"), 0o755);
  const files = await scanAppDir(dir);
  let counted = 0;
  const entries = await unpack(packageStream(files, new Set([sha1("held")]), (n) => (counted += n)));
  t.equal(entries[0]?.path, RESOURCES_ENTRY, "first entry");
  t.strictSame(JSON.parse(entries[0]?.body.toString() ?? ""), [
    { path: "held.txt", sha1: sha1("held"), mode: 0o644 },
  ]);
  const rest = entries.slice(1);
  t.strictSame(
    rest.map((e) => e.path),
    ["a.txt", "big.bin", long, "empty"].sort(),
  );
  for (const e of rest) t.strictSame(e.body, readFileSync(join(dir, e.path)), `${e.path} bytes`);
  t.equal(rest.find((e) => e.path === "a.txt")?.mode, 0o755);
  t.equal(counted, 5 + big.length + 4, "progress counts the file bytes sent");
});

t.test("the same files give the same package bytes", async (t) => {
  const dir = tree({ "a.txt": "alpha", "b/c.txt": "c" });
  const files = await scanAppDir(dir);
  const bytes = async () => {
    const chunks: Buffer[] = [];
    for await (const c of packageStream(files, new Set())) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  t.strictSame(await bytes(), await bytes());
});
