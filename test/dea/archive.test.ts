// The DEA's archive work through its real piscina pool (workers run from dist/: build first).
// Hostile packages are built here header by header, so each field is the test's choice,
// including a size that lies and device entries; each must be refused with its code, write
// nothing outside the destination and leave no destination behind. Good packages unpack
// exactly; droplets pack to the same digest for the same tree; the event loop stays free.
import { randomBytes } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import t from "tap";
import { ArchiveWork } from "../../dea/staging/archive.js";
import type { StagingCode } from "../../dea/staging/errors.js";
import { guardChildren } from "../helpers/children.js";
import { file, type RawEntry, tarball } from "../helpers/tarball.js";

guardChildren(t);

const sandbox = mkdtempSync(join(tmpdir(), "kiln-archive-"));
t.teardown(() => rmSync(sandbox, { recursive: true, force: true }));
const work = new ArchiveWork({ maxThreads: 2 });
t.teardown(() => work.close());

let serial = 0;
function writeArchive(bytes: Buffer): string {
  const p = join(sandbox, `pkg-${serial++}.tar.gz`);
  writeFileSync(p, bytes);
  return p;
}

/** Every path under `dir`, relative, sorted. */
function listTree(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const child = rel === "" ? name : `${rel}/${name}`;
    out.push(child);
    const st = lstatSync(join(dir, child));
    if (st.isDirectory()) out.push(...listTree(dir, child));
  }
  return out;
}

const good = [file("app/index.js", "console.log('hi')\n"), file("app/lib/util.js", "export {}\n")];

interface Hostile {
  name: string;
  entries?: RawEntry[];
  raw?: Buffer;
  tail?: Buffer;
  limits?: { maxFiles?: number; maxBytes?: number; maxPathLength?: number };
  code: StagingCode;
}

const MiB = 1024 * 1024;
const hostile: Hostile[] = [
  { name: "a '..' segment", entries: [...good, file("../evil", "x")], code: "KILN_DEA_ARCHIVE_PATH_ESCAPE" },
  {
    name: "a '..' deeper in",
    entries: [...good, file("app/../../evil", "x")],
    code: "KILN_DEA_ARCHIVE_PATH_ESCAPE",
  },
  {
    name: "an absolute path",
    entries: [...good, file(`${sandbox}/abs-evil`, "x")],
    code: "KILN_DEA_ARCHIVE_ABSOLUTE_PATH",
  },
  {
    name: "a symlink to an absolute path, then a file through it",
    entries: [
      ...good,
      { header: { path: "a", type: "SymbolicLink", linkpath: sandbox } },
      file("a/passwd", "x"),
    ],
    code: "KILN_DEA_ARCHIVE_LINK_ESCAPE",
  },
  {
    name: "a symlink climbing out of its folder",
    entries: [...good, { header: { path: "app/l", type: "SymbolicLink", linkpath: "../../x" } }],
    code: "KILN_DEA_ARCHIVE_LINK_ESCAPE",
  },
  {
    name: "a symlink whose '..' follows a name (could climb out through another link)",
    entries: [...good, { header: { path: "app/lib/l", type: "SymbolicLink", linkpath: "../lib/../.." } }],
    code: "KILN_DEA_ARCHIVE_LINK_ESCAPE",
  },
  {
    name: "a hard link out of the package",
    entries: [...good, { header: { path: "h", type: "Link", linkpath: "../outside" } }],
    code: "KILN_DEA_ARCHIVE_LINK_ESCAPE",
  },
  {
    name: "a hard link to an absolute path",
    entries: [...good, { header: { path: "h", type: "Link", linkpath: "/etc/passwd" } }],
    code: "KILN_DEA_ARCHIVE_LINK_ESCAPE",
  },
  {
    name: "a path through a symlink of the same package (inside, but a later entry writes through it)",
    entries: [...good, { header: { path: "a", type: "SymbolicLink", linkpath: "app" } }, file("a/evil", "x")],
    code: "KILN_DEA_ARCHIVE_PATH_ESCAPE",
  },
  {
    name: "a character device",
    entries: [...good, { header: { path: "null", type: "CharacterDevice", devmaj: 1, devmin: 3 } }],
    code: "KILN_DEA_ARCHIVE_SPECIAL_FILE",
  },
  {
    name: "a block device",
    entries: [...good, { header: { path: "sda", type: "BlockDevice", devmaj: 8, devmin: 0 } }],
    code: "KILN_DEA_ARCHIVE_SPECIAL_FILE",
  },
  {
    name: "a FIFO",
    entries: [...good, { header: { path: "fifo", type: "FIFO" } }],
    code: "KILN_DEA_ARCHIVE_SPECIAL_FILE",
  },
  {
    name: "more entries than the file-count limit",
    entries: [...good, file("a", ""), file("b", "")],
    limits: { maxFiles: 3 },
    code: "KILN_DEA_ARCHIVE_TOO_MANY_FILES",
  },
  {
    name: "declared sizes over the size limit",
    entries: [...good, file("big", Buffer.alloc(2 * MiB, 7))],
    limits: { maxBytes: MiB },
    code: "KILN_DEA_ARCHIVE_TOO_LARGE",
  },
  {
    name: "a header declaring more than the size limit, before its data comes",
    entries: [...good, { header: { path: "big", type: "File", size: 2 * MiB }, body: Buffer.from("x") }],
    tail: Buffer.alloc(0),
    limits: { maxBytes: MiB },
    code: "KILN_DEA_ARCHIVE_TOO_LARGE",
  },
  {
    name: "a header that understates its size, with megabytes after it",
    entries: [...good, { header: { path: "small", type: "File", size: 0 } }],
    tail: Buffer.alloc(4 * MiB),
    limits: { maxBytes: MiB },
    code: "KILN_DEA_ARCHIVE_TOO_LARGE",
  },
  {
    name: "a header that understates its size, with data after it",
    entries: [
      ...good,
      { header: { path: "small", type: "File", size: 10 }, body: Buffer.alloc(64 * 1024, 0x41) },
    ],
    code: "KILN_DEA_ARCHIVE_CORRUPT",
  },
  {
    name: "a header that overstates its size (truncated)",
    entries: [...good, { header: { path: "big", type: "File", size: MiB }, body: Buffer.from("short") }],
    tail: Buffer.alloc(0),
    code: "KILN_DEA_ARCHIVE_CORRUPT",
  },
  {
    name: "a path over the length limit",
    entries: [...good, file(`app/${"x".repeat(60)}`, "x")],
    limits: { maxPathLength: 50 },
    code: "KILN_DEA_ARCHIVE_PATH_TOO_LONG",
  },
  { name: "not gzip", raw: Buffer.from("PK\x03\x04 a zip, not a tar.gz"), code: "KILN_DEA_ARCHIVE_CORRUPT" },
  {
    name: "gzip of something not tar",
    raw: gzipSync(Buffer.alloc(4096, 0x41)),
    code: "KILN_DEA_ARCHIVE_CORRUPT",
  },
  { name: "compressed twice", raw: gzipSync(tarball(good)), code: "KILN_DEA_ARCHIVE_CORRUPT" },
  {
    // The gzip stream ends in the middle of a file's data, while that file is being written.
    name: "gzip cut short inside a file",
    raw: (() => {
      const whole = tarball([...good, file("app/data.bin", randomBytes(2 * MiB))]);
      return whole.subarray(0, whole.length - MiB);
    })(),
    code: "KILN_DEA_ARCHIVE_CORRUPT",
  },
];

t.test("hostile packages are refused with their code and leave nothing", async (t) => {
  for (const h of hostile) {
    const archive = writeArchive(h.raw ?? tarball(h.entries ?? [], h.tail));
    const root = join(sandbox, `case-${serial++}`);
    const dest = join(root, "a", "b", "dest");
    mkdirSync(join(root, "a", "b"), { recursive: true });
    const before = listTree(root);
    await t.rejects(
      work.unpackPackage(archive, dest, h.limits),
      { code: h.code, name: "StagingError" },
      h.name,
    );
    t.notOk(existsSync(dest), `${h.name}: no destination left`);
    t.same(listTree(root), before, `${h.name}: nothing written beside it`);
  }
  t.notOk(existsSync(`${sandbox}/abs-evil`), "the absolute path was not written");
});

t.test("a destination that already holds files is refused and left alone", async (t) => {
  const dest = join(sandbox, "busy");
  mkdirSync(dest);
  writeFileSync(join(dest, "keep"), "mine");
  await t.rejects(work.unpackPackage(writeArchive(tarball(good)), dest), {
    code: "KILN_DEA_ARCHIVE_DEST_NOT_EMPTY",
  });
  t.equal(readFileSync(join(dest, "keep"), "utf8"), "mine");
});

t.test("a good package unpacks exactly", async (t) => {
  const big = randomBytes(5 * MiB);
  const entries: RawEntry[] = [
    { header: { path: "app/", type: "Directory", mode: 0o755 } },
    { header: { path: "app/lib/deep/", type: "Directory", mode: 0o755 } },
    file("app/lib/deep/x.js", "deep\n"),
    file("app/empty", ""),
    file("app/big.bin", big),
    file("app/bin/run", "#!/bin/sh\n", 0o4755),
    { header: { path: "app/current", type: "SymbolicLink", linkpath: "lib/deep/x.js" } },
    { header: { path: "app/lib/deep/up", type: "SymbolicLink", linkpath: "../../empty" } },
    { header: { path: "app/lib/deep/hard", type: "Link", linkpath: "app/lib/deep/x.js" } },
    file("README", "readme\n"),
  ];
  const dest = join(sandbox, "good");
  const res = await work.unpackPackage(writeArchive(tarball(entries)), dest);
  t.same(res, { files: entries.length, bytes: 5 + 0 + big.length + 10 + 7 });
  t.same(listTree(dest), [
    "README",
    "app",
    "app/big.bin",
    "app/bin",
    "app/bin/run",
    "app/current",
    "app/empty",
    "app/lib",
    "app/lib/deep",
    "app/lib/deep/hard",
    "app/lib/deep/up",
    "app/lib/deep/x.js",
  ]);
  t.ok(readFileSync(join(dest, "app/big.bin")).equals(big), "5 MiB file byte for byte");
  t.equal(readFileSync(join(dest, "app/empty")).length, 0);
  t.equal(readlinkSync(join(dest, "app/current")), "lib/deep/x.js");
  t.equal(readFileSync(join(dest, "app/current"), "utf8"), "deep\n");
  t.equal(readFileSync(join(dest, "app/lib/deep/up"), "utf8"), "");
  t.equal(lstatSync(join(dest, "app/lib/deep/hard")).ino, lstatSync(join(dest, "app/lib/deep/x.js")).ino);
  const mode = lstatSync(join(dest, "app/bin/run")).mode;
  t.equal(mode & 0o7000, 0, "no set-id bit from a package");
  t.equal(mode & 0o100, 0o100, "the execute bit is kept");
});

t.test("a droplet's digest depends on the tree only", async (t) => {
  const tree = join(sandbox, "tree");
  mkdirSync(join(tree, "app", "lib"), { recursive: true });
  writeFileSync(join(tree, "app", "lib", "a.js"), "a\n");
  writeFileSync(join(tree, "app", "b.txt"), "b\n");
  writeFileSync(join(tree, "z"), "");
  symlinkSync("lib/a.js", join(tree, "app", "link"));
  const one = await work.packDroplet(tree, join(sandbox, "d1.tgz"));
  utimesSync(join(tree, "app", "b.txt"), new Date(5e12), new Date(5e12));
  const two = await work.packDroplet(tree, join(sandbox, "d2.tgz"));
  t.match(one.sha256, /^[0-9a-f]{64}$/);
  t.match(one.sha1, /^[0-9a-f]{40}$/);
  t.same(two, one, "same tree, other mtimes: same digest");
  t.same(await work.digestFile(join(sandbox, "d1.tgz")), one, "digestFile agrees with the pack");
  writeFileSync(join(tree, "app", "b.txt"), "c\n");
  const three = await work.packDroplet(tree, join(sandbox, "d3.tgz"));
  t.not(three.sha256, one.sha256, "one byte changed: another digest");
  t.not(three.sha1, one.sha1);
  // The same tree made in another order gives the same droplet.
  const names = ["f3", "f1", "f4", "f2"];
  const made = (root: string, order: string[]): void => {
    mkdirSync(root);
    for (const n of order) writeFileSync(join(root, n), n);
  };
  made(join(sandbox, "order-a"), names);
  made(join(sandbox, "order-b"), [...names].reverse());
  const a = await work.packDroplet(join(sandbox, "order-a"), join(sandbox, "oa.tgz"));
  const b = await work.packDroplet(join(sandbox, "order-b"), join(sandbox, "ob.tgz"));
  t.equal(b.sha256, a.sha256, "the same tree made in another order: same digest");
  const back = join(sandbox, "back");
  await work.unpackPackage(join(sandbox, "d3.tgz"), back);
  t.same(listTree(back), listTree(tree), "the droplet unpacks to the same tree");
  t.equal(readFileSync(join(back, "app", "b.txt"), "utf8"), "c\n");
  t.equal(readlinkSync(join(back, "app", "link")), "lib/a.js");
});

t.test("the event loop stays free while a 50 MiB package unpacks", async (t) => {
  const chunk = randomBytes(MiB);
  const entries: RawEntry[] = [];
  for (let i = 0; i < 50; i++) entries.push(file(`blob/${i}.bin`, chunk));
  const archive = writeArchive(tarball(entries));
  await work.digestFile(archive); // the pool's threads are up before the clock starts
  let maxLag = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 5);
    last = now;
  }, 5);
  const started = performance.now();
  const busyBefore = performance.eventLoopUtilization();
  const res = await work.unpackPackage(archive, join(sandbox, "large"));
  const busy = performance.eventLoopUtilization(busyBefore).utilization;
  const took = performance.now() - started;
  clearInterval(timer);
  t.equal(res.bytes, 50 * MiB);
  // The unpack is asynchronous even on the main thread, so lag alone cannot tell the pool
  // from inline work; the share of the unpack's time the main thread was busy can.
  t.ok(busy < 0.2, `main thread busy ${(busy * 100).toFixed(1)}% of a ${took.toFixed(0)} ms unpack`);
  // A loop blocked by the unpack would lag by about its whole length. The bound leaves room
  // for the scheduling of a shared 2-core machine, which alone has shown lags of 55 ms.
  t.ok(maxLag < 100, `max event-loop lag ${maxLag.toFixed(1)} ms during a ${took.toFixed(0)} ms unpack`);
});
