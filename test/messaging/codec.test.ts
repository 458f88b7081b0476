// Protobuf payloads: a round trip for every message type, and coded errors for bytes
// that are not a valid message of the subject's type.
import t from "tap";
import {
  decode,
  encode,
  type Inputs,
  kindOfSubject,
  MAX_LOG_LINE_BYTES,
  type PayloadKind,
  type Payloads,
  payloadKinds,
} from "../../messaging/codec.js";
import { MessagingError } from "../../messaging/errors.js";
import { kiln } from "../../messaging/generated/kiln.js";

const now = Date.now();

/** A fully populated value of every payload kind (every field set to something non-default). */
const samples: { [K in PayloadKind]: Payloads[K] } = {
  "dea.discover": {
    app: "0f6c2f3a-app",
    version: "v3",
    memoryMb: 256,
    diskMb: 1024,
    stack: "cflinuxfs4",
    excludeDeaIds: ["dea-1", "dea-2"],
  },
  "dea.discover:reply": {
    deaId: "dea-7",
    appInstances: 2,
    availableMemoryMb: 4096,
    availableDiskMb: 20000,
    taintMs: 120,
  },
  "dea.stage": {
    app: "app-1",
    taskId: "task-9",
    packageKey: "packages/abc",
    buildpack: "nodejs",
    stack: "cflinuxfs4",
    env: { NODE_ENV: "production", EMPTY: "" },
    memoryMb: 512,
    diskMb: 2048,
    timeoutMs: 900_000,
  },
  "dea.stage:reply": {
    taskId: "task-9",
    ok: true,
    dropletKey: "droplets/def",
    dropletSha1: "a".repeat(40),
    detectedBuildpack: "nodejs",
    startCommand: "node server.js",
    error: "",
    errorCode: "",
    logTail: ["-----> Node app detected", "-----> Done"],
  },
  "dea.start": {
    app: "app-1",
    appName: "hello",
    space: "dev",
    version: "v3",
    dropletKey: "droplets/def",
    dropletSha1: "b".repeat(40),
    indices: [0, 1, 4],
    memoryMb: 256,
    diskMb: 1024,
    startCommand: "node server.js",
    env: { A: "1" },
    uris: ["hello.localhost", "hello.localhost/api"],
    servicesJson: '{"db":[]}',
    healthCheckType: "http",
    healthCheckHttpEndpoint: "/health",
    healthCheckTimeoutMs: 60_000,
  },
  "dea.stop": { app: "app-1", version: "v2", indices: [3], instanceIds: ["i-1", "i-2"] },
  "dea.update": { app: "app-1", version: "v3", uris: ["hello.localhost", "hello.localhost/api"] },
  "dea.heartbeat": {
    deaId: "dea-7",
    at: now,
    instances: [
      {
        app: "app-1",
        instanceId: "i-1",
        index: 0,
        version: "v3",
        state: "RUNNING",
        stateSince: now - 5000,
        memoryBytes: 123_456_789_012,
        diskBytes: 9_007_199_254_740_991,
        cpuPermille: 250,
        host: "10.0.0.7",
        port: 61001,
      },
      {
        app: "app-2",
        instanceId: "i-9",
        index: 3,
        version: "v1",
        state: "CRASHED",
        stateSince: now - 1,
        memoryBytes: 0,
        diskBytes: 1,
        cpuPermille: 0,
        host: "",
        port: 0,
      },
    ],
  },
  "dea.advertise": {
    deaId: "dea-7",
    host: "10.0.0.7",
    stacks: ["cflinuxfs4"],
    availableMemoryMb: 3072,
    availableDiskMb: 10_000,
    appInstanceCounts: { "app-1": 2, "app-2": 1 },
    placementZone: "z1",
    at: now,
    isolation: "runc",
    memoryCapacityMb: 4096,
    diskCapacityMb: 20_000,
  },
  "droplet.exited": {
    app: "app-1",
    instanceId: "i-1",
    index: 2,
    reason: "CRASHED",
    exitStatus: -9,
    at: now,
    version: "v3",
    deaId: "dea-7",
    description: "out of memory",
  },
  "cc.hm.requests": { op: "START", app: "app-1", indices: [0, 2], version: "v3" },
  logs: { at: now, source: "APP", index: 1, stream: "stderr", text: "héllo wörld ✓" },
};

/** Deterministic pseudo-random bytes (xorshift32), so a failure reproduces. */
function pseudoRandomBytes(seed: number, n: number): Buffer {
  let x = seed | 0 || 1;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Encodes with the generated type directly, bypassing the codec's checks (to forge bad input). */
function raw(
  type: { encode(m: never): { finish(): Uint8Array } },
  fields: Record<string, unknown>,
): Uint8Array {
  return type.encode(fields as never).finish();
}

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    return err instanceof MessagingError ? err.code : `not a MessagingError: ${String(err)}`;
  }
}

t.test("every payload kind has a sample here", async (t) => {
  t.same(Object.keys(samples).sort(), [...payloadKinds].sort());
});

t.test("round trip of every protobuf message, all fields set", async (t) => {
  for (const kind of payloadKinds) {
    const value = samples[kind];
    const bytes = encode(kind, value as Inputs[typeof kind]);
    t.ok(bytes instanceof Uint8Array && bytes.length > 0, `${kind} encodes`);
    t.same(decode(kind, bytes), value, `${kind} decodes to the same value`);
  }
});

t.test("round trip with only the required fields fills proto3 defaults", async (t) => {
  const exited = decode(
    "droplet.exited",
    encode("droplet.exited", { app: "a", instanceId: "i", index: 0, reason: "STOPPED", at: now }),
  );
  t.same(exited, {
    app: "a",
    instanceId: "i",
    index: 0,
    reason: "STOPPED",
    exitStatus: 0,
    at: now,
    version: "",
    deaId: "",
    description: "",
  });
  const hb = decode("dea.heartbeat", encode("dea.heartbeat", { deaId: "d", at: now }));
  t.same(hb.instances, []);
  const stop = decode("dea.stop", encode("dea.stop", { app: "a" }));
  t.same(stop, { app: "a", version: "", indices: [], instanceIds: [] });
  const update = decode("dea.update", encode("dea.update", { app: "a", version: "v1" }));
  t.same(update, { app: "a", version: "v1", uris: [] }, "an update may take every route away");
  const hm = decode("cc.hm.requests", encode("cc.hm.requests", { op: "STOP", app: "a" }));
  t.equal(hm.op, "STOP");
  for (const source of ["APP", "STG", "RTR", "API", "HM"] as const) {
    t.equal(decode("logs", encode("logs", { at: now, source, text: "" })).source, source);
  }
  for (const reason of ["STOPPED", "CRASHED", "DEA_SHUTDOWN", "DEA_EVACUATION"] as const) {
    t.equal(
      decode(
        "droplet.exited",
        encode("droplet.exited", { app: "a", instanceId: "i", index: 0, reason, at: now }),
      ).reason,
      reason,
    );
  }
});

t.test("decoded values hold plain numbers, never Long", async (t) => {
  const hb = decode("dea.heartbeat", encode("dea.heartbeat", samples["dea.heartbeat"]));
  t.equal(typeof hb.at, "number");
  t.equal(typeof hb.instances[0]?.memoryBytes, "number");
  t.equal(hb.instances[0]?.diskBytes, Number.MAX_SAFE_INTEGER);
});

t.test("random bytes give a coded error, never a crash or a silent value", async (t) => {
  for (const kind of payloadKinds) {
    const wrong: string[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const bytes = pseudoRandomBytes(0x9e3779b9 + i * 7919, 1 + (i % 64));
      const code = codeOf(() => decode(kind, bytes));
      if (code === "KILN_MSG_BAD_PROTOBUF" || code === "KILN_MSG_INVALID_FIELD") seen.add(code);
      else wrong.push(`${bytes.toString("hex")}: ${code ?? "decoded without error"}`);
    }
    t.same(
      wrong,
      [],
      `${kind}: 500 pseudo-random payloads all refused with a code (${[...seen].join(", ")})`,
    );
  }
});

t.test("bytes with an invalid wire type are KILN_MSG_BAD_PROTOBUF", async (t) => {
  // Tag byte 0x0f = field 1, wire type 7 (does not exist).
  for (const kind of payloadKinds)
    t.equal(
      codeOf(() => decode(kind, Uint8Array.of(0x0f, 1, 2))),
      "KILN_MSG_BAD_PROTOBUF",
    );
});

t.test("truncated messages are KILN_MSG_BAD_PROTOBUF", async (t) => {
  for (const kind of payloadKinds) {
    const bytes = encode(kind, samples[kind] as Inputs[typeof kind]);
    // Cutting inside the first length-delimited field (every sample starts with a string or
    // an int64 followed by more): drop all but 3 bytes, then all but the last byte.
    t.equal(
      codeOf(() => decode(kind, bytes.subarray(0, 3))),
      "KILN_MSG_BAD_PROTOBUF",
      `${kind} cut to 3 bytes`,
    );
  }
  const exited = encode("droplet.exited", samples["droplet.exited"]);
  t.equal(
    codeOf(() => decode("droplet.exited", exited.subarray(0, exited.length - 1))),
    "KILN_MSG_BAD_PROTOBUF",
  );
});

t.test("an empty payload is a message with every field at its default: refused as invalid", async (t) => {
  for (const kind of payloadKinds) {
    t.equal(
      codeOf(() => decode(kind, new Uint8Array(0))),
      "KILN_MSG_INVALID_FIELD",
      kind,
    );
  }
});

t.test("enum values out of range are KILN_MSG_INVALID_FIELD", async (t) => {
  const bytes = raw(kiln.DropletExited, { app: "a", instanceId: "i", reason: 9, at: now });
  t.equal(
    codeOf(() => decode("droplet.exited", bytes)),
    "KILN_MSG_INVALID_FIELD",
  );
  const unspecified = raw(kiln.DropletExited, { app: "a", instanceId: "i", reason: 0, at: now });
  t.equal(
    codeOf(() => decode("droplet.exited", unspecified)),
    "KILN_MSG_INVALID_FIELD",
  );
  const op = raw(kiln.HmRequest, { op: 3, app: "a" });
  t.equal(
    codeOf(() => decode("cc.hm.requests", op)),
    "KILN_MSG_INVALID_FIELD",
  );
  const state = raw(kiln.DeaHeartbeat, {
    deaId: "d",
    at: now,
    instances: [{ app: "a", instanceId: "i", state: 42 }],
  });
  t.match(
    (() => {
      try {
        decode("dea.heartbeat", state);
      } catch (err) {
        return err;
      }
    })(),
    { code: "KILN_MSG_INVALID_FIELD", message: /instances\[0\]\.state/ },
  );
});

t.test("missing required fields are KILN_MSG_INVALID_FIELD, on decode and on encode", async (t) => {
  const noApp = raw(kiln.DropletExited, { instanceId: "i", reason: 2, at: now });
  t.equal(
    codeOf(() => decode("droplet.exited", noApp)),
    "KILN_MSG_INVALID_FIELD",
  );
  t.equal(
    codeOf(() => encode("dea.start", { ...samples["dea.start"], indices: [] })),
    "KILN_MSG_INVALID_FIELD",
    "a start request names at least one index",
  );
  t.equal(
    codeOf(() => encode("dea.discover", { app: "a", memoryMb: 0 })),
    "KILN_MSG_INVALID_FIELD",
  );
  t.equal(
    codeOf(() => encode("logs", { at: 0, source: "APP", text: "x" })),
    "KILN_MSG_INVALID_FIELD",
  );
  t.equal(
    codeOf(() => encode("droplet.exited", { ...samples["droplet.exited"], reason: "EXPLODED" as "CRASHED" })),
    "KILN_MSG_INVALID_FIELD",
  );
  t.equal(
    codeOf(() => encode("dea.stage:reply", { taskId: "t", ok: true })),
    "KILN_MSG_INVALID_FIELD",
    "a successful staging names its droplet",
  );
  t.equal(
    codeOf(() => encode("dea.heartbeat", { deaId: "d", at: 1.5 })),
    "KILN_MSG_INVALID_FIELD",
  );
  t.equal(
    codeOf(() => decode("dea.update", raw(kiln.UpdateRequest, { app: "a", uris: ["x.test"] }))),
    "KILN_MSG_INVALID_FIELD",
    "an update names the version its list is for",
  );
  t.equal(
    codeOf(() => encode("dea.update", { app: "a", version: "v1", uris: ["x.test", ""] })),
    "KILN_MSG_INVALID_FIELD",
    "an update has no empty route",
  );
});

t.test("size limits: refused before parsing, and on encode", async (t) => {
  t.equal(
    codeOf(() => decode("dea.heartbeat", new Uint8Array(1024 * 1024 + 1))),
    "KILN_MSG_TOO_LARGE",
  );
  t.equal(
    codeOf(() => decode("logs", new Uint8Array(MAX_LOG_LINE_BYTES + 1))),
    "KILN_MSG_TOO_LARGE",
  );
  t.equal(
    codeOf(() => encode("logs", { at: now, source: "APP", text: "x".repeat(MAX_LOG_LINE_BYTES) })),
    "KILN_MSG_TOO_LARGE",
  );
});

t.test("an int64 beyond 2^53 is refused rather than rounded", async (t) => {
  // LogLine by hand: field 1 (at) = varint 2^53 + 1, field 2 (source) = 1, field 5 (text) = "x".
  const varint: number[] = [];
  for (let v = 2n ** 53n + 1n; ; v >>= 7n) {
    if (v < 0x80n) {
      varint.push(Number(v));
      break;
    }
    varint.push(Number(v & 0x7fn) | 0x80);
  }
  const bytes = Uint8Array.from([0x08, ...varint, 0x10, 0x01, 0x2a, 0x01, 0x78]);
  t.throws(() => decode("logs", bytes), { code: "KILN_MSG_INVALID_FIELD", message: /at is beyond 2\^53/ });
});

t.test("unknown fields from a newer schema are skipped", async (t) => {
  const base = encode("cc.hm.requests", samples["cc.hm.requests"]);
  // Field 99, wire type 2 (length-delimited), 3 bytes.
  const extra = Uint8Array.of(0x9a, 0x06, 3, 1, 2, 3);
  const bytes = new Uint8Array(base.length + extra.length);
  bytes.set(base);
  bytes.set(extra, base.length);
  t.same(decode("cc.hm.requests", bytes), samples["cc.hm.requests"]);
});

t.test("an unknown kind is KILN_MSG_UNKNOWN_SUBJECT", async (t) => {
  t.equal(
    codeOf(() => decode("router.register" as PayloadKind, new Uint8Array(0))),
    "KILN_MSG_UNKNOWN_SUBJECT",
  );
});

t.test("kindOfSubject maps concrete subjects to payload kinds", async (t) => {
  t.equal(kindOfSubject("dea.discover"), "dea.discover");
  t.equal(kindOfSubject("dea.7f3a.stage"), "dea.stage");
  t.equal(kindOfSubject("dea.7f3a.start"), "dea.start");
  t.equal(kindOfSubject("dea.stop"), "dea.stop");
  t.equal(kindOfSubject("dea.update"), "dea.update");
  t.equal(kindOfSubject("droplet.exited"), "droplet.exited");
  t.equal(kindOfSubject("cc.hm.requests"), "cc.hm.requests");
  t.equal(kindOfSubject("logs.app-1"), "logs");
  t.equal(kindOfSubject("router.register"), null);
  t.equal(kindOfSubject("logs."), null);
  t.equal(kindOfSubject("dea..stage"), null);
  t.equal(kindOfSubject("dea.1.2.stage"), null);
});
