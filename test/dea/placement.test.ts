// Placement rules as pure functions: the taint delay, the room check and the resource ledger.
import t from "tap";
import { ResourceLedger } from "../../dea/placement/ledger.js";
import { lacksRoom } from "../../dea/placement/room.js";
import { TAINT_CAP_MS, taintDelayMs, taintHashMs } from "../../dea/placement/taint.js";

t.test("taint delay: 10 ms per instance + 100 ms × memory ratio + hash term, capped at 250 ms", async (t) => {
  const cases: [number, number, number, number][] = [
    // [instances, memory ratio, hash ms, expected ms]
    [0, 0, 0, 0],
    [1, 0, 0, 10],
    [3, 0, 0, 30],
    [0, 0.5, 0, 50],
    [0, 1, 0, 100],
    [0, 0, 9, 9],
    [2, 0.25, 7, 52],
    [14, 1, 9, 249],
    [15, 1, 0, 250],
    [15, 1, 9, 250],
    [30, 0, 0, 250],
    [1000, 1, 9, 250],
    // A ratio outside 0..1 (capacity shrunk under reservations) is clamped.
    [0, 1.7, 0, 100],
    [1, -0.2, 3, 13],
  ];
  for (const [appInstances, memoryRatio, hashMs, want] of cases) {
    t.equal(
      taintDelayMs({ appInstances, memoryRatio, hashMs }),
      want,
      `${appInstances} instances, ratio ${memoryRatio}, hash ${hashMs} → ${want} ms`,
    );
  }
  t.equal(TAINT_CAP_MS, 250);
});

t.test("taint hash: SHA-1(app, NUL, DEA id), first 4 bytes mod 10", async (t) => {
  // Values computed independently (Python hashlib) from the same definition.
  t.equal(taintHashMs("app-1", "dea-1"), 2);
  t.equal(taintHashMs("app-1", "dea-2"), 3);
  t.equal(taintHashMs("ab", "c"), 7);
  t.equal(taintHashMs("a", "bc"), 0, "the separator keeps (ab, c) and (a, bc) apart");
  const seen = new Set<number>();
  for (let i = 0; i < 500; i++) {
    const h = taintHashMs(`app-${i % 7}`, `dea-${i}`);
    t.ok(Number.isInteger(h) && h >= 0 && h <= 9, `hash term ${h} in 0..9`);
    t.equal(taintHashMs(`app-${i % 7}`, `dea-${i}`), h, "stable for a pair");
    seen.add(h);
  }
  t.equal(seen.size, 10, "every value 0..9 occurs across DEAs");
});

t.test("room: memory, disk and stack", async (t) => {
  const offer = { availableMemoryMb: 1024, availableDiskMb: 2048, stacks: ["cflinuxfs4", "kiln-min"] };
  const cases: [string, { memoryMb: number; diskMb: number; stack: string }, string | null][] = [
    ["fits", { memoryMb: 256, diskMb: 512, stack: "cflinuxfs4" }, null],
    ["exactly fits", { memoryMb: 1024, diskMb: 2048, stack: "" }, null],
    ["any stack", { memoryMb: 1, diskMb: 0, stack: "" }, null],
    ["second stack", { memoryMb: 1, diskMb: 0, stack: "kiln-min" }, null],
    ["one MiB too much memory", { memoryMb: 1025, diskMb: 1, stack: "" }, "memory"],
    ["one MiB too much disk", { memoryMb: 1, diskMb: 2049, stack: "" }, "disk"],
    ["unknown stack", { memoryMb: 1, diskMb: 1, stack: "windows" }, "stack"],
  ];
  for (const [name, req, want] of cases) t.equal(lacksRoom(req, offer), want, name);
});

t.test("ledger: reservations, counts per app, release", async (t) => {
  const l = new ResourceLedger({ memoryMb: 1000, diskMb: 4000 });
  t.equal(l.memoryRatio, 0);
  l.reserve({ instanceId: "i1", app: "a", memoryMb: 250, diskMb: 1000 });
  l.reserve({ instanceId: "i2", app: "a", memoryMb: 250, diskMb: 1000 });
  l.reserve({ instanceId: "i3", app: "b", memoryMb: 100, diskMb: 0 });
  t.equal(l.instancesOf("a"), 2);
  t.equal(l.instancesOf("b"), 1);
  t.equal(l.instancesOf("c"), 0);
  t.same(l.instanceCounts(), { a: 2, b: 1 });
  t.equal(l.reservedMemoryMb, 600);
  t.equal(l.availableMemoryMb, 400);
  t.equal(l.availableDiskMb, 2000);
  t.equal(l.memoryRatio, 0.6);
  t.equal(l.instances, 3);
  t.throws(() => l.reserve({ instanceId: "i1", app: "a", memoryMb: 1, diskMb: 1 }), {
    code: "KILN_DEA_DUPLICATE_INSTANCE",
  });
  t.throws(() => l.reserve({ instanceId: "i4", app: "a", memoryMb: 401, diskMb: 1 }), {
    code: "KILN_DEA_NO_ROOM",
  });
  t.throws(() => l.reserve({ instanceId: "i4", app: "a", memoryMb: 1, diskMb: 2001 }), {
    code: "KILN_DEA_NO_ROOM",
  });
  t.throws(() => l.reserve({ instanceId: "", app: "a", memoryMb: 1, diskMb: 1 }), {
    code: "KILN_DEA_BAD_RESERVATION",
  });
  t.throws(() => l.reserve({ instanceId: "i5", app: "a", memoryMb: 1.5, diskMb: 1 }), {
    code: "KILN_DEA_BAD_RESERVATION",
  });
  t.equal(l.instances, 3, "refused reservations leave nothing behind");
  l.reserve({ instanceId: "i4", app: "a", memoryMb: 400, diskMb: 2000 });
  t.equal(l.availableMemoryMb, 0);
  t.equal(l.memoryRatio, 1);
  t.equal(l.release("i4"), true);
  t.equal(l.release("i4"), false, "a second release is a no-op");
  t.equal(l.release("i3"), true);
  t.same(l.instanceCounts(), { a: 2 }, "an app with no instance left is gone from the counts");
  t.equal(l.reservedMemoryMb, 500);
  t.equal(l.reservedDiskMb, 2000);
});
