// dea.discover against real `kiln dea` processes: the DEA with fewer instances of the app answers
// first, a full DEA stays silent, exclude_dea_ids and stacks are honoured, malformed requests are
// counted and logged by code and never stop the DEA.
import { createInbox } from "nats";
import t from "tap";
import { type DeaDiscoverReply, decode, encode, type Inputs } from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { kiln } from "../../messaging/generated/kiln.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { until } from "../helpers/until.js";
import { type DeaProc, events, startDeaProc } from "./harness.js";

guardChildren(t);

const APP = "app-x";
const CAPACITY = ["--memory-mb", "4096", "--disk-mb", "8192", "--advertise-interval-ms", "60000"];

/** Publishes a discover with a fresh inbox and collects every reply within `windowMs`, in arrival order. */
async function collect(
  cc: KilnConnection,
  payload: Uint8Array,
  windowMs = 300,
): Promise<{ reply: DeaDiscoverReply; afterMs: number }[]> {
  const inbox = createInbox();
  const got: { reply: DeaDiscoverReply; afterMs: number }[] = [];
  const started = performance.now();
  const sub = cc.nc.subscribe(inbox, {
    callback: (_err, msg) => {
      got.push({ reply: decode("dea.discover:reply", msg.data), afterMs: performance.now() - started });
    },
  });
  await cc.nc.flush();
  cc.nc.publish("dea.discover", payload, { reply: inbox });
  await new Promise((r) => setTimeout(r, windowMs));
  sub.unsubscribe();
  return got;
}

const discover = (input: Partial<Inputs["dea.discover"]> = {}): Uint8Array =>
  encode("dea.discover", { app: APP, memoryMb: 256, diskMb: 512, ...input });

/**
 * Publishes `payload` with a reply subject, then asks with a well-formed discover. The DEA takes
 * discovers in order and its replies reach this connection in order, so once the second is
 * answered any reply to the first is already here: no window to guess under load.
 */
async function thenWellFormed(
  cc: KilnConnection,
  payload: Uint8Array,
): Promise<{ replies: Uint8Array[]; answeredBy: string }> {
  const inbox = createInbox();
  const replies: Uint8Array[] = [];
  const sub = cc.nc.subscribe(inbox, { callback: (_err, msg) => replies.push(msg.data) });
  cc.nc.publish("dea.discover", payload, { reply: inbox });
  const answer = await cc.nc.request("dea.discover", discover(), { timeout: 10_000 });
  sub.unsubscribe();
  return { replies, answeredBy: decode("dea.discover:reply", answer.data).deaId };
}

t.test("two DEAs and a full one", async (t) => {
  const nats = await startTestNats(t);
  const cc = await nats.connect("cc");
  // busy and light reserve the same memory (384 of 4096 MiB: 9.375 ms) and differ in instances
  // of the app: busy 6 (60 ms), light 1 (10 ms). Their ids are chosen so the hash term favours
  // busy (SHA-1 term 3 ms for dea-busy-0, 8 ms for dea-light-3): only the instance term puts
  // light first. busy: 60 + 9.375 + 3 ≈ 72 ms; light: 10 + 9.375 + 8 ≈ 27 ms
  // (45 ms apart, so a loaded machine's timer jitter does not swap them).
  // full: every MiB of its memory reserved by another app.
  const [busy, light, full] = await Promise.all([
    startDeaProc(t, nats, "dea-busy-0", CAPACITY, { KILN_DEA_TEST_RESERVATIONS: `${APP}:6:64:64` }),
    startDeaProc(t, nats, "dea-light-3", CAPACITY, {
      KILN_DEA_TEST_RESERVATIONS: `${APP}:1:64:64,other-app:5:64:0`,
    }),
    startDeaProc(t, nats, "dea-full", ["--memory-mb", "512", "--disk-mb", "8192"], {
      KILN_DEA_TEST_RESERVATIONS: "other-app:2:256:0",
    }),
  ]);

  await t.test("the first reply to a request comes from the DEA with fewer instances", async (t) => {
    for (let i = 0; i < 3; i++) {
      const msg = await cc.nc.request("dea.discover", discover(), { timeout: 2000 });
      const reply = decode("dea.discover:reply", msg.data);
      t.equal(reply.deaId, light.id, `round ${i}: first reply from the lighter DEA`);
      t.equal(reply.appInstances, 1);
      t.equal(reply.availableMemoryMb, 4096 - 384);
      t.equal(reply.availableDiskMb, 8192 - 64);
    }
  });

  await t.test("all replies within 300 ms: light, then busy; the full DEA is silent", async (t) => {
    const got = await collect(cc, discover());
    t.same(
      got.map((g) => g.reply.deaId),
      [light.id, busy.id],
      "light first, busy second, nothing from the full DEA",
    );
    const [l, b] = got;
    t.equal(l?.reply.taintMs, 27, "light: round(10 + 9.375 + 8) ms");
    t.equal(b?.reply.taintMs, 72, "busy: round(60 + 9.375 + 3) ms");
    t.equal(b?.reply.appInstances, 6);
    t.ok(b !== undefined && b.afterMs >= b.reply.taintMs, "busy answered no sooner than its taint delay");
  });

  await t.test("exclude_dea_ids", async (t) => {
    const got = await collect(cc, discover({ excludeDeaIds: [light.id, "someone-else"] }));
    t.same(
      got.map((g) => g.reply.deaId),
      [busy.id],
    );
    const first = decode(
      "dea.discover:reply",
      (await cc.nc.request("dea.discover", discover({ excludeDeaIds: [light.id] }), { timeout: 2000 })).data,
    );
    t.equal(first.deaId, busy.id, "the excluded DEA does not win a request");
  });

  await t.test("room: stack, memory and disk", async (t) => {
    t.same(await collect(cc, discover({ stack: "windows2016" })), [], "no DEA has that stack");
    t.same(
      (await collect(cc, discover({ stack: "cflinuxfs4" }))).map((g) => g.reply.deaId),
      [light.id, busy.id],
      "the default stack",
    );
    t.same(await collect(cc, discover({ memoryMb: 4096 })), [], "more memory than any DEA has free");
    t.same(await collect(cc, discover({ diskMb: 8192 })), [], "more disk than any DEA has free");
    t.same(
      (await collect(cc, discover({ memoryMb: 1 }))).map((g) => g.reply.deaId),
      [light.id, busy.id],
      "1 MiB: still nothing from the full DEA",
    );
  });

  await t.test("counters at stop", async (t) => {
    const stopped = await Promise.all([busy, light, full].map(async (d) => ({ d, e: await d.stop() })));
    for (const { d, e } of stopped) {
      t.equal(e.code, 0, `${d.id} exits 0 on SIGTERM`);
      t.equal(events(d.logs, "dea_stopped").length, 1, `${d.id} logs dea_stopped`);
    }
    const counters = (d: DeaProc) =>
      (events(d.logs, "dea_stopped")[0]?.counters ?? {}) as Record<string, number>;
    t.equal(counters(full).answered, 0, "the full DEA never answered");
    const noRoom = counters(full).noRoom ?? 0;
    t.ok(noRoom >= 8, `the full DEA counted ${noRoom} discovers without room`);
    t.equal(counters(light).excluded, 2, "the light DEA counted the two discovers that excluded it");
  });
});

t.test("malformed dea.discover: counted and logged by code, the DEA keeps answering", async (t) => {
  const nats = await startTestNats(t);
  const cc = await nats.connect("admin");
  const dea = await startDeaProc(t, nats, "dea-robust", CAPACITY);
  const cases: [string, Uint8Array, string][] = [
    ["not protobuf (text)", new TextEncoder().encode("hello, not protobuf"), "KILN_MSG_BAD_PROTOBUF"],
    [
      "not protobuf (bad wire type)",
      Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]),
      "KILN_MSG_BAD_PROTOBUF",
    ],
    ["empty payload", new Uint8Array(0), "KILN_MSG_INVALID_FIELD"],
    ["missing app id", kiln.DeaDiscover.encode({ memoryMb: 256 }).finish(), "KILN_MSG_INVALID_FIELD"],
    ["memory 0", kiln.DeaDiscover.encode({ app: APP, memoryMb: 0 }).finish(), "KILN_MSG_INVALID_FIELD"],
    // memory_mb (field 3) sent as a length-delimited string, app (field 1) as a varint.
    [
      "wrong type: memory as string",
      Uint8Array.from([0x0a, 1, 0x61, 0x1a, 3, 0x61, 0x62, 0x63]),
      "KILN_MSG_INVALID_FIELD",
    ],
    ["wrong type: app as number", Uint8Array.from([0x08, 0x05, 0x18, 0x80, 0x02]), "KILN_MSG_INVALID_FIELD"],
    [
      "huge app id (600 KiB)",
      kiln.DeaDiscover.encode({ app: "x".repeat(600 * 1024), memoryMb: 1 }).finish(),
      "KILN_MSG_BAD_SUBJECT_TOKEN",
    ],
    [
      "app id with a dot",
      kiln.DeaDiscover.encode({ app: "a.b", memoryMb: 1 }).finish(),
      "KILN_MSG_BAD_SUBJECT_TOKEN",
    ],
    ["huge garbage (1000 KiB)", new Uint8Array(1000 * 1024).fill(0xff), "KILN_MSG_BAD_PROTOBUF"],
  ];
  for (const [name, payload, code] of cases) {
    const before = events(dea.logs, "discover_rejected").length;
    const { replies, answeredBy } = await thenWellFormed(cc, payload);
    t.same(replies, [], `${name}: no reply`);
    t.equal(answeredBy, dea.id, `${name}: the DEA still answers`);
    // Its log line comes through a pipe, maybe after the reply.
    const rejected = await until(
      `${name}: discover_rejected logged`,
      () => {
        const r = events(dea.logs, "discover_rejected");
        return r.length > before ? r : undefined;
      },
      10_000,
      20,
    );
    t.equal(rejected.length, before + 1, `${name}: one discover_rejected line`);
    t.equal(rejected.at(-1)?.code, code, `${name}: ${code}`);
    t.ok(String(rejected.at(-1)?.reason ?? "").length <= 201, `${name}: the reason stays short`);
  }
  // Published without a reply subject: nobody to answer.
  cc.nc.publish("dea.discover", discover());
  await dea.waitFor("discover_rejected");
  await new Promise((r) => setTimeout(r, 100));
  t.equal(events(dea.logs, "discover_rejected").at(-1)?.code, "KILN_DEA_DISCOVER_NO_REPLY");
  // A huge but well-formed discover whose exclude list names this DEA among 20000 others.
  const many = Array.from({ length: 20_000 }, (_, i) => `dea-${i}`);
  t.same(
    (await thenWellFormed(cc, discover({ excludeDeaIds: [...many, dea.id] }))).replies,
    [],
    "excluded in a huge list",
  );
  const answer = await cc.nc.request("dea.discover", discover({ excludeDeaIds: many }), { timeout: 10_000 });
  t.equal(decode("dea.discover:reply", answer.data).deaId, dea.id, "not in a huge list: answers");
  const e = await dea.stop();
  t.equal(e.code, 0, "still exits 0 on SIGTERM");
  const counters = (events(dea.logs, "dea_stopped")[0]?.counters ?? {}) as {
    rejected: Record<string, number>;
  };
  t.same(
    counters.rejected,
    {
      KILN_MSG_BAD_PROTOBUF: 3,
      KILN_MSG_INVALID_FIELD: 5,
      KILN_MSG_BAD_SUBJECT_TOKEN: 2,
      KILN_DEA_DISCOVER_NO_REPLY: 1,
    },
    "rejections counted by code",
  );
});
