// dea.advertise from a real `kiln dea`: at start and then every interval, with the DEA's id,
// zone, stacks, isolation, capacity, what is free and its instances per app.
import t from "tap";
import { type DeaAdvertise, decode } from "../../messaging/codec.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { startDeaProc } from "./harness.js";

guardChildren(t);

t.test("advertises at start and every interval, with the right fields", async (t) => {
  const nats = await startTestNats(t);
  // The Cloud Controller's user: it must be allowed to see what the DEA publishes.
  const cc = await nats.connect("cc");
  const seen: { ad: DeaAdvertise; receivedAt: number }[] = [];
  cc.nc.subscribe("dea.advertise", {
    callback: (_err, msg) => seen.push({ ad: decode("dea.advertise", msg.data), receivedAt: Date.now() }),
  });
  await cc.flush();
  const startedAt = Date.now();
  const dea = await startDeaProc(
    t,
    nats,
    "dea-ad",
    [
      "--advertise-interval-ms",
      "200",
      "--zone",
      "z2",
      "--stacks",
      "cflinuxfs4,kiln-min",
      "--isolation",
      "none",
      "--memory-mb",
      "2048",
      "--disk-mb",
      "10000",
      "--host",
      "10.1.2.3",
    ],
    { KILN_DEA_TEST_RESERVATIONS: "app-a:2:256:1000,app-b:1:512:0" },
  );
  await new Promise((r) => setTimeout(r, 1100));
  const mine = seen.filter((s) => s.ad.deaId === dea.id);
  t.ok(mine.length >= 4 && mine.length <= 8, `${mine.length} advertisements in about 1.1 s at 200 ms`);
  const first = mine[0];
  t.ok(first !== undefined && first.receivedAt - startedAt < 5000, "the first comes at start");
  t.same(first?.ad, {
    deaId: "dea-ad",
    host: "10.1.2.3",
    stacks: ["cflinuxfs4", "kiln-min"],
    availableMemoryMb: 2048 - 1024,
    availableDiskMb: 10000 - 2000,
    appInstanceCounts: { "app-a": 2, "app-b": 1 },
    placementZone: "z2",
    at: first?.ad.at,
    isolation: "none",
    memoryCapacityMb: 2048,
    diskCapacityMb: 10000,
  });
  for (let i = 1; i < mine.length; i++) {
    const gap = (mine[i]?.ad.at ?? 0) - (mine[i - 1]?.ad.at ?? 0);
    t.ok(gap >= 150 && gap <= 600, `advertisement ${i} came ${gap} ms after the one before`);
  }
  const e = await dea.stop();
  t.equal(e.code, 0, "SIGTERM: exit 0");
  const after = seen.length;
  await new Promise((r) => setTimeout(r, 400));
  t.equal(seen.length, after, "nothing advertised once stopped");
});

t.test("defaults: the id is random per process when not given, isolation runc, zone default", async (t) => {
  const nats = await startTestNats(t);
  const cc = await nats.connect("cc");
  const ads: DeaAdvertise[] = [];
  cc.nc.subscribe("dea.advertise", { callback: (_err, msg) => ads.push(decode("dea.advertise", msg.data)) });
  await cc.flush();
  const { spawn } = await import("node:child_process");
  const { kilnBin } = await import("../../kernel/paths.js");
  const cred = nats.credentials("dea");
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) clean[k] = v;
  const run = async (): Promise<string> => {
    const before = ads.length;
    const child = spawn(process.execPath, [kilnBin, "dea", "--nats", nats.url, "--memory-mb", "100"], {
      env: { ...clean, KILN_NATS_USER: cred.user, KILN_NATS_PASS: cred.pass },
      stdio: "ignore",
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const deadline = Date.now() + 10_000;
    while (ads.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGTERM");
    t.equal(await exited, 0, "exit 0 on SIGTERM");
    const ad = ads[before];
    t.equal(ad?.isolation, "runc");
    t.equal(ad?.placementZone, "default");
    t.same(ad?.stacks, ["cflinuxfs4"]);
    t.equal(ad?.memoryCapacityMb, 100);
    t.ok((ad?.diskCapacityMb ?? 0) > 0, "disk capacity measured from the data dir's file system");
    return ad?.deaId ?? "";
  };
  const a = await run();
  const b = await run();
  t.match(a, /^[0-9a-f-]{36}$/, "a random id");
  t.not(a, b, "another process, another id");
});

t.test("SIGTERM while NATS is still unreachable: exit 0 at once", async (t) => {
  const { spawn } = await import("node:child_process");
  const { kilnBin } = await import("../../kernel/paths.js");
  const child = spawn(
    process.execPath,
    [kilnBin, "dea", "--nats", "nats://127.0.0.1:1", "--memory-mb", "100"],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  // Signalled once it is starting (its signal handlers are in place by then), however slow
  // the machine is to get it there.
  for (let i = 0; i < 400 && !err.includes('"event":"dea_starting"'); i++)
    await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 200));
  const sent = Date.now();
  child.kill("SIGTERM");
  t.equal(await exited, 0, "exit 0");
  t.ok(Date.now() - sent < 3000, `gone ${Date.now() - sent} ms after SIGTERM`);
  t.match(err, /"event":"signal"/);
});
