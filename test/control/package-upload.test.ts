// The package upload stream on a real nats-server's object store: a file over the in-memory
// limit goes through a temp file and is stored under files/<sha1>; the package written to
// packages/<guid>.tar.gz unpacks to the uploaded files, matched ones included; its files_sha256
// names the files whichever of them were held.
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { gunzipSync, gzipSync } from "node:zlib";
import t from "tap";
import { Header, Parser, type ReadEntry } from "tar";
import { receivePackage } from "../../control/api/package-upload.js";
import { blobStore } from "../../messaging/jetstream.js";
import { startTestNats } from "../helpers/nats.js";

function tarball(entries: { path: string; body: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const block = Buffer.alloc(512);
    new Header({ path: e.path, mode: 0o644, size: e.body.length, type: "File", mtime: new Date(0) }).encode(
      block,
      0,
    );
    parts.push(block, e.body, Buffer.alloc((512 - (e.body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts));
}

/** A request body as the server sees it, in 64 KiB chunks. */
function request(body: Buffer): IncomingMessage {
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += 65_536) chunks.push(body.subarray(i, i + 65_536));
  return Object.assign(Readable.from(chunks), { headers: {} }) as unknown as IncomingMessage;
}

async function unpack(tgz: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const p = new Parser();
  p.on("entry", (e: ReadEntry) => {
    const parts: Buffer[] = [];
    e.on("data", (c: Buffer) => parts.push(c));
    e.on("end", () => out.set(String(e.path), Buffer.concat(parts)));
  });
  await new Promise<void>((resolve) => {
    p.on("end", resolve);
    p.end(gunzipSync(tgz));
  });
  return out;
}

const sha1 = (b: Buffer) => createHash("sha1").update(b).digest("hex");

t.test("a large file through a temp file, a matched one read back", async (t) => {
  const nats = await startTestNats(t);
  const cc = await nats.connect("cc");
  const blobs = await blobStore(cc.nc, 1);
  const held = Buffer.from("already here\n");
  await blobs.putBlob({ name: `files/${sha1(held)}` }, held);
  const big = randomBytes(6 * 1024 * 1024 + 3);
  const small = Buffer.from("small\n");
  const resources = Buffer.from(JSON.stringify([{ path: "lib/held.txt", sha1: sha1(held), mode: 0o600 }]));
  const got = await receivePackage(
    request(
      tarball([
        { path: ".kiln-resources.json", body: resources },
        { path: "./big.bin", body: big },
        { path: "dir/small.txt", body: small },
      ]),
    ),
    blobs,
    "pkg-1",
    64 * 1024 * 1024,
  );
  const stored = await blobs.getBlob(`files/${sha1(big)}`);
  t.ok(stored !== null && Buffer.from(stored).equals(big), "the large file is stored under its SHA-1");
  const tgz = Buffer.from((await blobs.getBlob("packages/pkg-1.tar.gz")) as Uint8Array);
  t.equal(got.size, tgz.length, "size of the package tar.gz");
  t.equal(got.sha256, createHash("sha256").update(tgz).digest("hex"), "its SHA-256");
  const files = await unpack(tgz);
  t.same([...files.keys()], ["lib/held.txt", "big.bin", "dir/small.txt"]);
  t.ok(files.get("big.bin")?.equals(big), "big.bin intact");
  t.ok(files.get("lib/held.txt")?.equals(held), "the matched file read back from the store");

  // The same files again, all held now: the tar.gz's order differs, its file listing does not.
  const all = Buffer.from(
    JSON.stringify([
      { path: "big.bin", sha1: sha1(big), mode: 0o644 },
      { path: "dir/small.txt", sha1: sha1(small), mode: 0o644 },
      { path: "lib/held.txt", sha1: sha1(held), mode: 0o600 },
    ]),
  );
  const again = await receivePackage(
    request(tarball([{ path: ".kiln-resources.json", body: all }])),
    blobs,
    "pkg-2",
    64 * 1024 * 1024,
  );
  t.not(again.sha256, got.sha256, "another tar.gz");
  t.equal(again.files_sha256, got.files_sha256, "the same files");
  const changed = Buffer.from(JSON.stringify([{ path: "lib/held.txt", sha1: sha1(held), mode: 0o755 }]));
  const other = await receivePackage(
    request(tarball([{ path: ".kiln-resources.json", body: changed }])),
    blobs,
    "pkg-3",
    64 * 1024 * 1024,
  );
  t.not(other.files_sha256, got.files_sha256, "other files or modes, another listing");
  await cc.close();
});
