// native/uws is upstream files plus kiln.patch, nothing else: scripts/uws-patch.mjs check
// reverses the patch over a copy of the vendored tree and compares every file's git blob id
// with native/uws/UPSTREAM.json. Offline: no network, no mirror, no git.
import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { projectRoot } from "../../kernel/paths.js";

const script = join(projectRoot, "scripts", "uws-patch.mjs");
const vendored = join(projectRoot, "native", "uws");

function check(root: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [script, "check", "--root", root], {
    encoding: "utf8",
    env: { ...process.env, KILN_UWS_MIRRORS: "/nonexistent" },
  });
  return { status: r.status, stderr: r.stderr };
}

/** A copy of native/uws to spoil. */
function copy(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-uws-vendor-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(vendored, dir, { recursive: true });
  return dir;
}

t.test("every vendored file is upstream's plus kiln.patch", async (t) => {
  const r = check(vendored);
  t.equal(r.status, 0, r.stderr);
});

t.test("an edit that kiln.patch does not hold fails the check", async (t) => {
  const dir = copy(t);
  appendFileSync(join(dir, "uSockets", "src", "bsd.c"), "/* an unrecorded change */\n");
  const r = check(dir);
  t.equal(r.status, 1);
  t.match(r.stderr, /uSockets\/src\/bsd\.c: differs from upstream uNetworking\/uSockets@86097c4/);
});

t.test("an edit inside a patched region fails the check", async (t) => {
  const dir = copy(t);
  const file = join(dir, "binding", "Http3App.h");
  appendFileSync(file, "struct Extra;\n");
  const r = check(dir);
  t.equal(r.status, 1);
  t.match(r.stderr, /kiln\.patch does not reverse-apply: binding\/Http3App\.h/);
});

t.test("a file in neither the manifest nor kiln.patch fails the check", async (t) => {
  const dir = copy(t);
  writeFileSync(join(dir, "uWebSockets", "src", "Extra.h"), "#pragma once\n");
  const r = check(dir);
  t.equal(r.status, 1);
  t.match(r.stderr, /uWebSockets\/src\/Extra\.h: not in UPSTREAM\.json and not added by kiln\.patch/);
});
