// The droplet cache against the real object store and archive pool: concurrent starts of
// one droplet download it once, the SHA-1 is checked, a missing droplet is named, and the
// cache stays within its size by removing the least recently used droplet from disk.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ObjectStore } from "nats";
import t from "tap";
import { DropletCache } from "../../dea/instances/droplets.js";
import { ArchiveWork } from "../../dea/staging/archive.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";

guardChildren(t);

t.test("droplet cache", async (t) => {
  const base = await mkdtemp(join(tmpdir(), "kiln-instance-droplets-"));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const nats = await startTestNats(t);
  const bus = await nats.connect("dea");
  const store = await bus.nc.jetstream().views.os("kiln_blobs");
  const archive = new ArchiveWork({ maxThreads: 2 });
  t.teardown(() => archive.close());

  const sha1s: Record<string, string> = {};
  for (const name of ["a", "b"]) {
    const src = join(base, `src-${name}`);
    mkdirSync(join(src, ".kiln"), { recursive: true });
    writeFileSync(join(src, "app.txt"), name.repeat(100_000));
    writeFileSync(
      join(src, ".kiln", "droplet.json"),
      JSON.stringify({ startCommand: `run ${name}`, buildpack: "x" }),
    );
    const tarball = join(base, `${name}.tar.gz`);
    sha1s[name] = (await archive.packDroplet(src, tarball)).sha1;
    await store.putBlob({ name: `droplets/${name}` }, await readFile(tarball));
  }

  // The real store, with its downloads counted.
  let downloads = 0;
  const blobs = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "get")
        return (name: string) => {
          downloads++;
          return target.get(name);
        };
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as ObjectStore;
  const cache = new DropletCache({ blobs, archive, dir: join(base, "droplets"), maxBytes: 150_000 });

  const five = await Promise.all([1, 2, 3, 4, 5].map(() => cache.acquire("droplets/a", sha1s.a ?? "")));
  t.equal(downloads, 1, "five concurrent starts, one download");
  t.equal(new Set(five.map((d) => d.dir)).size, 1, "one unpacked tree");
  const a = five[0];
  t.equal(a?.meta.startCommand, "run a", ".kiln/droplet.json read");
  t.equal(readFileSync(join(a?.dir ?? "", "app.txt"), "utf8").length, 100_000);
  for (const d of five) cache.release(d);

  const again = await cache.acquire("droplets/a", "");
  cache.release(again);
  t.equal(downloads, 1, "cached: no second download");

  await t.rejects(cache.acquire("droplets/a", "0".repeat(40)), { code: "KILN_DEA_INSTANCE_DROPLET_SHA1" });
  await t.rejects(cache.acquire("droplets/none", ""), { code: "KILN_DEA_INSTANCE_DROPLET_NOT_FOUND" });

  const b = await cache.acquire("droplets/b", sha1s.b ?? "");
  cache.release(b);
  t.equal(downloads, 2);
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(existsSync(a?.dir ?? "/"), "the least recently used droplet left the disk when b came in");
  t.ok(existsSync(b.dir), "b is kept");
});
