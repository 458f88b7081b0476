#!/usr/bin/env node
// native/uws provenance: the vendored uWebSockets, uSockets and uWebSockets.js binding are
// upstream files (native/uws/UPSTREAM.json: their git blob ids) plus kiln.patch. Plain Node,
// no network; the check applies the patch with its own exact applier (no fuzz, no offsets).
//
//   node scripts/uws-patch.mjs check               kiln.patch reversed over a copy of the
//                                                  vendored tree gives every file of the
//                                                  manifest, byte for byte, and nothing else
//   node scripts/uws-patch.mjs regen [--upstream DIR]
//                                                  rewrites kiln.patch as the diff from the
//                                                  upstream copies (DIR, or assembled as
//                                                  `upstream` does) to the vendored tree
//   node scripts/uws-patch.mjs upstream DIR        writes the upstream copies into DIR
//   node scripts/uws-patch.mjs manifest --upstream DIR
//                                                  records DIR's blob ids for the vendored
//                                                  files (when vendoring a new version)
// --root DIR (any command) works on another copy of native/uws. The upstream copies are taken
// by blob id from the reversed patch, a mirror (KILN_UWS_MIRRORS, default /work/.mirror:
// <owner>+<name>/repo), or this repository's objects; they are never committed.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

/** git's blob id of `buf`: sha1 of "blob <length>\0" and the bytes. */
export function blobId(buf) {
  return createHash("sha1").update(`blob ${buf.length}\0`).update(buf).digest("hex");
}

/** Files under `dir` (relative paths with "/", sorted). */
function walk(dir, prefix = "") {
  if (!existsSync(join(dir, prefix))) return [];
  const out = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === "" ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory()) out.push(...walk(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

function readManifest(root) {
  return JSON.parse(readFileSync(join(root, "UPSTREAM.json"), "utf8"));
}

/** path (relative to native/uws) → { blob, component } for every file of the manifest. */
function manifestFiles(manifest) {
  const files = new Map();
  for (const [name, c] of Object.entries(manifest)) {
    for (const [path, blob] of Object.entries(c.files)) {
      if (files.has(path)) throw new Error(`UPSTREAM.json lists ${path} twice`);
      files.set(path, { blob, component: name });
    }
  }
  return files;
}

/** The folders of native/uws that hold vendored files (first path segment of the manifest's). */
function vendoredDirs(manifest) {
  return [...new Set([...manifestFiles(manifest).keys()].map((p) => p.split("/")[0]))].sort();
}

/** Every vendored file: path → bytes. */
function readTree(root, dirs) {
  const tree = new Map();
  for (const d of dirs)
    for (const p of walk(join(root, d))) tree.set(`${d}/${p}`, readFileSync(join(root, d, p)));
  return tree;
}

/** Splits text into lines that keep their "\n" (the last may lack it). */
function lines(buf) {
  const s = buf.toString("latin1");
  return s === "" ? [] : s.match(/[^\n]*\n|[^\n]+$/g);
}

/** Parses a unified diff: [{ path, oldPath, newPath, hunks: [{ oldStart, newStart, old[], new[] }] }]. */
export function parsePatch(text) {
  const src = text.split("\n");
  const files = [];
  const strip = (h) => {
    const name = h.slice(4).split("\t")[0];
    return name === "/dev/null" ? null : name.split("/").slice(1).join("/");
  };
  for (let i = 0; i < src.length; i++) {
    if (!src[i].startsWith("--- ") || !src[i + 1]?.startsWith("+++ ")) continue;
    const file = { oldPath: strip(src[i]), newPath: strip(src[i + 1]), hunks: [] };
    file.path = file.newPath ?? file.oldPath;
    i += 2;
    while (i < src.length && src[i].startsWith("@@ ")) {
      const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(src[i]);
      if (m === null) throw new Error(`kiln.patch: bad hunk header "${src[i]}"`);
      const hunk = { oldStart: Number(m[1]), newStart: Number(m[3]), old: [], new: [] };
      let oldLeft = m[2] === undefined ? 1 : Number(m[2]);
      let newLeft = m[4] === undefined ? 1 : Number(m[4]);
      i++;
      let last = null;
      while (oldLeft > 0 || newLeft > 0 || src[i]?.startsWith("\\")) {
        const l = src[i];
        if (l === undefined) throw new Error(`kiln.patch: ${file.path}: hunk cut short`);
        const body = `${l.slice(1)}\n`;
        if (l.startsWith("\\")) {
          // "\ No newline at end of file": the line before has no "\n" on its side(s).
          for (const side of last) side[side.length - 1] = side[side.length - 1].slice(0, -1);
        } else if (l.startsWith(" ") || l === "") {
          hunk.old.push(body);
          hunk.new.push(body);
          last = [hunk.old, hunk.new];
          oldLeft--;
          newLeft--;
        } else if (l.startsWith("-")) {
          hunk.old.push(body);
          last = [hunk.old];
          oldLeft--;
        } else if (l.startsWith("+")) {
          hunk.new.push(body);
          last = [hunk.new];
          newLeft--;
        } else throw new Error(`kiln.patch: ${file.path}: unexpected line "${l}"`);
        i++;
      }
      file.hunks.push(hunk);
    }
    i--;
    files.push(file);
  }
  return files;
}

/**
 * Applies one file's hunks to `buf` exactly (reverse: from the new side back to the old), or
 * throws. Returns the bytes, or null when the result is "no file".
 */
export function applyFile(file, buf, reverse) {
  const [from, to] = reverse ? ["new", "old"] : ["old", "new"];
  const [fromStart] = reverse ? ["newStart"] : ["oldStart"];
  if ((reverse ? file.newPath : file.oldPath) === null) {
    if (buf !== null)
      throw new Error(`${file.path}: exists, but the patch ${reverse ? "deletes" : "creates"} it`);
    buf = Buffer.alloc(0);
  } else if (buf === null) throw new Error(`${file.path}: missing`);
  const src = lines(buf);
  const out = [];
  let at = 0;
  for (const h of file.hunks) {
    // A hunk with no lines on this side starts after line N, not at it.
    const start = h[from].length === 0 ? h[fromStart] : h[fromStart] - 1;
    if (start < at) throw new Error(`${file.path}: hunks overlap at line ${h[fromStart]}`);
    out.push(...src.slice(at, start));
    for (let k = 0; k < h[from].length; k++) {
      if (src[start + k] !== h[from][k])
        throw new Error(`${file.path}: line ${start + k + 1} is not what kiln.patch says it is`);
    }
    out.push(...h[to]);
    at = start + h[from].length;
  }
  out.push(...src.slice(at));
  if ((reverse ? file.oldPath : file.newPath) === null) {
    if (out.length > 0) throw new Error(`${file.path}: the patch removes it but lines are left`);
    return null;
  }
  return Buffer.from(out.join(""), "latin1");
}

/** Applies the whole patch to a tree (path → bytes), returning a new tree; errors are collected. */
function applyPatch(tree, patchText, reverse) {
  const out = new Map(tree);
  const errors = [];
  for (const file of parsePatch(patchText)) {
    const target = reverse ? file.newPath : file.oldPath;
    try {
      const result = applyFile(
        file,
        target === null ? (out.get(file.path) ?? null) : (out.get(target) ?? null),
        reverse,
      );
      if (target !== null) out.delete(target);
      const dest = reverse ? file.oldPath : file.newPath;
      if (result !== null && dest !== null) out.set(dest, result);
    } catch (err) {
      errors.push(err.message);
    }
  }
  return { tree: out, errors };
}

/** Problems found by comparing the reversed tree with the manifest (empty: all upstream). */
export function check(root) {
  const manifest = readManifest(root);
  const expected = manifestFiles(manifest);
  const vendored = readTree(root, vendoredDirs(manifest));
  const { tree, errors } = applyPatch(vendored, readFileSync(join(root, "kiln.patch"), "latin1"), true);
  const problems = errors.map((e) => `kiln.patch does not reverse-apply: ${e}`);
  for (const [path, buf] of tree) {
    const want = expected.get(path);
    if (want === undefined) problems.push(`${path}: not in UPSTREAM.json and not added by kiln.patch`);
    else if (blobId(buf) !== want.blob)
      problems.push(
        `${path}: differs from upstream ${manifest[want.component].repo}@${manifest[want.component].commit} beyond kiln.patch (blob ${blobId(buf)}, upstream ${want.blob})`,
      );
  }
  for (const path of expected.keys())
    if (!tree.has(path)) problems.push(`${path}: in UPSTREAM.json but missing`);
  return problems;
}

function git(gitDir, args) {
  const r = spawnSync("git", [`--git-dir=${gitDir}`, ...args], { maxBuffer: 64 << 20 });
  return r.status === 0 ? r.stdout : null;
}

/** The upstream copies (path → bytes), each verified against its blob id. */
function assembleUpstream(root) {
  const manifest = readManifest(root);
  const expected = manifestFiles(manifest);
  const { tree } = applyPatch(
    readTree(root, vendoredDirs(manifest)),
    readFileSync(join(root, "kiln.patch"), "latin1"),
    true,
  );
  const mirrors = process.env.KILN_UWS_MIRRORS ?? "/work/.mirror";
  const own = spawnSync("git", ["-C", repoRoot, "rev-parse", "--git-common-dir"], { encoding: "utf8" });
  const out = new Map();
  const missing = [];
  for (const [path, { blob, component }] of expected) {
    const reversed = tree.get(path);
    if (reversed !== undefined && blobId(reversed) === blob) {
      out.set(path, reversed);
      continue;
    }
    const gitDirs = [join(mirrors, manifest[component].repo.replace("/", "+"), "repo")];
    if (own.status === 0) gitDirs.push(resolve(repoRoot, own.stdout.trim()));
    const found = gitDirs
      .map((d) => (existsSync(d) ? git(d, ["cat-file", "blob", blob]) : null))
      .find((b) => b);
    if (found && blobId(found) === blob) out.set(path, found);
    else missing.push(`${path} (${manifest[component].repo} blob ${blob})`);
  }
  if (missing.length > 0)
    throw new Error(`no upstream copy of: ${missing.join(", ")}; give them with --upstream DIR`);
  return out;
}

function readUpstreamDir(dir, root) {
  const expected = manifestFiles(readManifest(root));
  const out = new Map();
  for (const [path, { blob }] of expected) {
    const file = join(dir, path);
    if (!existsSync(file)) throw new Error(`${file}: missing from the upstream copies`);
    const buf = readFileSync(file);
    if (blobId(buf) !== blob) throw new Error(`${file}: blob ${blobId(buf)}, UPSTREAM.json says ${blob}`);
    out.set(path, buf);
  }
  return out;
}

function writeTree(dir, tree) {
  for (const [path, buf] of tree) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), buf);
  }
}

/** kiln.patch from the upstream copies to the vendored tree (diff -u per file, sorted). */
function regen(root, upstream) {
  const manifest = readManifest(root);
  const vendored = readTree(root, vendoredDirs(manifest));
  const work = mkdtempSync(join(tmpdir(), "kiln-uws-"));
  try {
    writeTree(join(work, "a"), upstream);
    writeTree(join(work, "b"), vendored);
    let text = "";
    for (const path of [...new Set([...upstream.keys(), ...vendored.keys()])].sort()) {
      const a = upstream.has(path) ? join(work, "a", path) : "/dev/null";
      const b = vendored.has(path) ? join(work, "b", path) : "/dev/null";
      const labels = [
        a === "/dev/null" ? "/dev/null" : `a/${path}`,
        b === "/dev/null" ? "/dev/null" : `b/${path}`,
      ];
      const r = spawnSync("diff", ["-u", "--label", labels[0], "--label", labels[1], a, b], {
        maxBuffer: 64 << 20,
      });
      if (r.status === 0) continue;
      if (r.status !== 1) throw new Error(`diff ${path}: ${r.stderr}`);
      text += `diff -u ${labels.join(" ")}\n${r.stdout.toString("latin1")}`;
    }
    // The patch must take the upstream copies to the vendored tree, and back.
    const forward = applyPatch(upstream, text, false);
    if (forward.errors.length > 0) throw new Error(forward.errors.join("\n"));
    for (const [path, buf] of vendored)
      if (!forward.tree.get(path)?.equals(buf))
        throw new Error(`${path}: the new patch does not reproduce it`);
    if (forward.tree.size !== vendored.size)
      throw new Error("the new patch leaves files the vendored tree lacks");
    writeFileSync(join(root, "kiln.patch"), Buffer.from(text, "latin1"));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main(argv) {
  const opt = (name) => {
    const i = argv.indexOf(name);
    if (i === -1) return undefined;
    const v = argv[i + 1];
    argv.splice(i, 2);
    if (v === undefined) throw new Error(`${name} needs a value`);
    return v;
  };
  const root = opt("--root") ?? join(repoRoot, "native", "uws");
  const upstreamDir = opt("--upstream");
  const [cmd = "check", arg] = argv;
  if (cmd === "check") {
    const problems = check(root);
    for (const p of problems) process.stderr.write(`uws-patch: ${p}\n`);
    if (problems.length > 0) return 1;
    process.stderr.write(
      `uws-patch: ${manifestFiles(readManifest(root)).size} files match upstream beyond kiln.patch\n`,
    );
    return 0;
  }
  if (cmd === "regen") {
    regen(root, upstreamDir === undefined ? assembleUpstream(root) : readUpstreamDir(upstreamDir, root));
    const problems = check(root);
    for (const p of problems) process.stderr.write(`uws-patch: ${p}\n`);
    return problems.length > 0 ? 1 : 0;
  }
  if (cmd === "upstream" && arg !== undefined) {
    writeTree(arg, assembleUpstream(root));
    return 0;
  }
  if (cmd === "manifest" && upstreamDir !== undefined) {
    const manifest = readManifest(root);
    for (const c of Object.values(manifest))
      for (const path of Object.keys(c.files)) c.files[path] = blobId(readFileSync(join(upstreamDir, path)));
    writeFileSync(join(root, "UPSTREAM.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    return 0;
  }
  process.stderr.write(
    "usage: uws-patch.mjs check | regen [--upstream DIR] | upstream DIR | manifest --upstream DIR  [--root DIR]\n",
  );
  return 2;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`uws-patch: ${err.message}\n`);
    process.exitCode = 1;
  }
}
