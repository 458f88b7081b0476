// gorouter JSON: decoding and validation of router.register/unregister/start, the
// encoders, and the conversion to the route table's types.
import t from "tap";
import { MessagingError } from "../../messaging/errors.js";
import {
  decodeRegister,
  decodeRouterStart,
  decodeUnregister,
  encodeRegistryMessage,
  encodeRouterStart,
  MAX_ROUTER_PAYLOAD_BYTES,
  type RegistryMessage,
  toEndpointSpec,
  toPoolOptions,
} from "../../messaging/gorouter.js";

const bytes = (v: unknown): Uint8Array =>
  new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

const minimal = { host: "10.0.0.5", port: 61001, uris: ["hello.localhost"] };

/** The error code decoding `payload` raises (or null when it decodes). */
function codeOf(payload: Uint8Array | string, decoder = decodeRegister): string | null {
  try {
    decoder(payload);
    return null;
  } catch (err) {
    return err instanceof MessagingError ? err.code : `not a MessagingError: ${String(err)}`;
  }
}

t.test("a full gorouter register message decodes", async (t) => {
  const msg = decodeRegister(
    bytes({
      host: "10.0.0.5",
      port: 61001,
      uris: ["hello.localhost", "hello.localhost/api"],
      app: "app-guid",
      private_instance_id: "inst-1",
      private_instance_index: "2",
      tags: { component: "dea", space: "dev" },
      stale_threshold_in_seconds: 30,
      route_service_url: "https://rs.example.com",
      options: {
        loadbalancing: "hash",
        hash_header: "X-User",
        hash_balance: 1.25,
        max_conns_per_backend: 50,
      },
      endpoint_updated_at_ns: 1700000000000000000,
      availability_zone: "z1",
      isolation_segment: "iso",
      server_cert_domain_san: "app.internal",
      tls_port: 61443,
      protocol: "http2",
    }),
  );
  t.same(msg, {
    host: "10.0.0.5",
    port: 61001,
    uris: ["hello.localhost", "hello.localhost/api"],
    app: "app-guid",
    privateInstanceId: "inst-1",
    privateInstanceIndex: "2",
    tags: { component: "dea", space: "dev" },
    staleThresholdInSeconds: 30,
    routeServiceUrl: "https://rs.example.com",
    options: { loadBalancing: "hash", hashHeader: "X-User", hashBalance: 1.25, maxConnsPerBackend: 50 },
    endpointUpdatedAtNs: 1700000000000000000n,
    availabilityZone: "z1",
    isolationSegment: "iso",
    serverCertDomainSan: "app.internal",
    tlsPort: 61443,
    protocol: "http2",
  });
});

t.test("a minimal message gets empty defaults; a string payload works too", async (t) => {
  const msg = decodeRegister(JSON.stringify(minimal));
  t.same(msg, {
    host: "10.0.0.5",
    port: 61001,
    uris: ["hello.localhost"],
    app: "",
    privateInstanceId: "",
    privateInstanceIndex: "",
    tags: {},
    staleThresholdInSeconds: 0,
    routeServiceUrl: "",
    options: { loadBalancing: null, hashHeader: "", hashBalance: 0, maxConnsPerBackend: 0 },
    endpointUpdatedAtNs: 0n,
    availabilityZone: "",
    isolationSegment: "",
    serverCertDomainSan: "",
    tlsPort: 0,
    protocol: "",
  });
});

t.test("hash_balance as a number or a numeric string", async (t) => {
  const opts = (hash_balance: unknown) =>
    decodeRegister(
      bytes({ ...minimal, options: { loadbalancing: "hash", hash_header: "X-U", hash_balance } }),
    ).options.hashBalance;
  t.equal(opts(1.5), 1.5);
  t.equal(opts("1.5"), 1.5);
  t.equal(opts("2"), 2);
  t.equal(opts(0), 0);
  t.equal(opts(""), 0);
  for (const bad of ["abc", "-1", -1, "1e400", " 1.5", "0x10", true, {}]) {
    t.equal(
      codeOf(
        bytes({ ...minimal, options: { loadbalancing: "hash", hash_header: "X-U", hash_balance: bad } }),
      ),
      "KILN_MSG_BAD_OPTIONS",
      `hash_balance ${JSON.stringify(bad)}`,
    );
  }
});

t.test("unknown fields are ignored; null means absent", async (t) => {
  const msg = decodeRegister(
    bytes({
      ...minimal,
      future_field: { nested: [1, 2, 3] },
      another: "x",
      app: null,
      tags: null,
      options: { loadbalancing: "least-connection", something_new: true },
    }),
  );
  t.equal(msg.app, "");
  t.same(msg.tags, {});
  t.equal(msg.options.loadBalancing, "least-connection");
  t.notOk("future_field" in msg);
});

t.test("endpoint_updated_at_ns keeps every digit beyond 2^53", async (t) => {
  const ns = "1732540000123456789";
  const text = `{"host":"h","port":1,"uris":["a"],"tags":{"endpoint_updated_at_ns":"x"},"endpoint_updated_at_ns":${ns}}`;
  t.equal(decodeRegister(text).endpointUpdatedAtNs, BigInt(ns));
  t.equal(decodeRegister(bytes(text)).endpointUpdatedAtNs, BigInt(ns));
  // A nested key of the same name after the top-level one does not fool it.
  const nested = `{"host":"h","port":1,"uris":["a"],"endpoint_updated_at_ns":${ns},"x":{"endpoint_updated_at_ns":1732540000999999999}}`;
  t.equal(decodeRegister(nested).endpointUpdatedAtNs, BigInt(ns));
  t.equal(
    decodeRegister(`{"host":"h","port":1,"uris":["a"],"endpoint_updated_at_ns" :  ${ns} }`)
      .endpointUpdatedAtNs,
    BigInt(ns),
  );
  t.equal(decodeRegister(bytes({ ...minimal, endpoint_updated_at_ns: 12345 })).endpointUpdatedAtNs, 12345n);
  t.equal(decodeRegister(bytes({ ...minimal, endpoint_updated_at_ns: ns })).endpointUpdatedAtNs, BigInt(ns));
  t.equal(codeOf(bytes({ ...minimal, endpoint_updated_at_ns: -1 })), "KILN_MSG_INVALID_FIELD");
  t.equal(codeOf(bytes({ ...minimal, endpoint_updated_at_ns: 1.5 })), "KILN_MSG_INVALID_FIELD");
});

t.test("private_instance_index may arrive as a number", async (t) => {
  t.equal(decodeRegister(bytes({ ...minimal, private_instance_index: 3 })).privateInstanceIndex, "3");
  t.equal(codeOf(bytes({ ...minimal, private_instance_index: -3 })), "KILN_MSG_INVALID_FIELD");
});

t.test("missing or empty host is KILN_MSG_MISSING_HOST", async (t) => {
  const { host: _h, ...noHost } = minimal;
  t.equal(codeOf(bytes(noHost)), "KILN_MSG_MISSING_HOST");
  t.equal(codeOf(bytes({ ...minimal, host: "" })), "KILN_MSG_MISSING_HOST");
  t.equal(codeOf(bytes({ ...minimal, host: 42 })), "KILN_MSG_MISSING_HOST");
  t.equal(codeOf(bytes({ ...minimal, host: null })), "KILN_MSG_MISSING_HOST");
});

t.test("port out of range or not an integer is KILN_MSG_BAD_PORT", async (t) => {
  for (const port of [0, 70000, 65536, -1, "80", 1.5, null, true, [80]]) {
    t.equal(codeOf(bytes({ ...minimal, port })), "KILN_MSG_BAD_PORT", `port ${JSON.stringify(port)}`);
  }
  const { port: _p, ...noPort } = minimal;
  t.equal(codeOf(bytes(noPort)), "KILN_MSG_BAD_PORT", "no port");
  t.equal(codeOf(bytes({ ...minimal, port: 1 })), null);
  t.equal(codeOf(bytes({ ...minimal, port: 65535 })), null);
  t.equal(codeOf(bytes({ ...minimal, tls_port: 70000 })), "KILN_MSG_BAD_PORT", "tls_port too");
  t.equal(codeOf(bytes({ ...minimal, tls_port: "443" })), "KILN_MSG_BAD_PORT");
});

t.test("uris missing, empty or not all non-empty strings is KILN_MSG_BAD_URIS", async (t) => {
  for (const uris of [undefined, null, [], "hello.localhost", [1], ["ok", 2], ["ok", ""], [null], [{}]]) {
    t.equal(codeOf(bytes({ ...minimal, uris })), "KILN_MSG_BAD_URIS", `uris ${JSON.stringify(uris)}`);
  }
});

t.test("a payload over the limit is KILN_MSG_TOO_LARGE without parsing it", async (t) => {
  // 1 MiB of invalid JSON: had it been parsed, the error would be KILN_MSG_NOT_JSON.
  const huge = new Uint8Array(1024 * 1024).fill(0x7b);
  t.equal(codeOf(huge), "KILN_MSG_TOO_LARGE");
  t.equal(codeOf("{".repeat(1024 * 1024)), "KILN_MSG_TOO_LARGE");
  // Multi-byte characters count as bytes, not as string length.
  const wide = `{"host":"${"é".repeat(MAX_ROUTER_PAYLOAD_BYTES / 2)}"}`;
  t.ok(wide.length < MAX_ROUTER_PAYLOAD_BYTES);
  t.equal(codeOf(wide), "KILN_MSG_TOO_LARGE");
  // A valid message right under the limit passes.
  const pad = "a".repeat(MAX_ROUTER_PAYLOAD_BYTES - 200);
  t.equal(codeOf(bytes({ ...minimal, isolation_segment: pad })), null);
});

t.test("not JSON, or JSON that is not an object, is KILN_MSG_NOT_JSON", async (t) => {
  for (const payload of ["", "not json", "{", '{"host":', "[]", "null", "42", '"string"', "true"]) {
    t.equal(codeOf(bytes(payload)), "KILN_MSG_NOT_JSON", JSON.stringify(payload));
  }
  t.equal(codeOf(Uint8Array.of(0xff, 0xfe, 0x00)), "KILN_MSG_NOT_JSON");
});

t.test("bad options are KILN_MSG_BAD_OPTIONS", async (t) => {
  const cases: unknown[] = [
    "round-robin",
    [],
    { loadbalancing: "random" },
    { loadbalancing: 1 },
    { loadbalancing: "hash" },
    { loadbalancing: "hash", hash_header: 5 },
    { max_conns_per_backend: -1 },
    { max_conns_per_backend: 1.5 },
    { max_conns_per_backend: "10" },
  ];
  for (const options of cases) {
    t.equal(codeOf(bytes({ ...minimal, options })), "KILN_MSG_BAD_OPTIONS", JSON.stringify(options));
  }
  t.equal(decodeRegister(bytes({ ...minimal, options: { loadbalancing: "" } })).options.loadBalancing, null);
});

t.test("other fields of the wrong type are KILN_MSG_INVALID_FIELD", async (t) => {
  const cases: Record<string, unknown>[] = [
    { app: 5 },
    { private_instance_id: [] },
    { tags: "a=b" },
    { tags: [] },
    { tags: { a: 1 } },
    { tags: { a: null } },
    { stale_threshold_in_seconds: -5 },
    { stale_threshold_in_seconds: "30" },
    { route_service_url: false },
    { availability_zone: 1 },
    { protocol: {} },
  ];
  for (const extra of cases) {
    t.equal(codeOf(bytes({ ...minimal, ...extra })), "KILN_MSG_INVALID_FIELD", JSON.stringify(extra));
  }
});

t.test("values bound for headers and cookies are short visible-ASCII tokens", async (t) => {
  // app and private_instance_id go into X-CF-ApplicationID / X-CF-InstanceID and
  // `Set-Cookie: __VCAP_ID__=`; private_instance_index into X-CF-InstanceIndex.
  const hostile: [string, string][] = [
    ["CR LF", "a\r\nSet-Cookie: x=1"],
    ["LF", "a\nb"],
    ["CR", "a\rb"],
    ["NUL", "a\u0000b"],
    ["tab", "a\tb"],
    ["space", "a b"],
    ["semicolon", "a;Path=/"],
    ["comma", "a,b"],
    ["double quote", 'a"b'],
    ["backslash", "a\\b"],
    ["colon", "app:0"],
    ["equals", "a=b"],
    ["non-ASCII", "caf\u00e9"],
    ["DEL", "a\u007fb"],
    ["over-long", "a".repeat(129)],
  ];
  for (const key of ["app", "private_instance_id"]) {
    for (const [what, v] of hostile) {
      t.equal(codeOf(bytes({ ...minimal, [key]: v })), "KILN_MSG_BAD_HEADER_VALUE", `${key}: ${what}`);
      t.equal(
        codeOf(bytes({ ...minimal, [key]: v }), decodeUnregister),
        "KILN_MSG_BAD_HEADER_VALUE",
        `${key} (unregister): ${what}`,
      );
    }
  }
  const badIndex: [string, unknown][] = [
    ["letters", "one"],
    ["sign", "-1"],
    ["plus", "+1"],
    ["decimal", "1.5"],
    ["space", " 1"],
    ["CR LF", "1\r\nX: y"],
    ["non-ASCII digit", "\u0661"],
    ["over-long", "12345678901"],
  ];
  for (const [what, v] of badIndex) {
    t.equal(
      codeOf(bytes({ ...minimal, private_instance_index: v })),
      "KILN_MSG_BAD_HEADER_VALUE",
      `index: ${what}`,
    );
  }
  for (const v of [-1, 1.5]) {
    t.equal(codeOf(bytes({ ...minimal, private_instance_index: v })), "KILN_MSG_INVALID_FIELD", `index ${v}`);
  }
  // Empty means "not announced" for all three (gorouter keys such an endpoint by host:port).
  t.equal(codeOf(bytes({ ...minimal, app: "", private_instance_id: "", private_instance_index: "" })), null);
  t.equal(codeOf(bytes({ ...minimal, host: "" })), "KILN_MSG_MISSING_HOST", "empty host");
  // What real registrars send passes unchanged.
  const ok = decodeRegister(
    bytes({
      ...minimal,
      app: "0b2c5e1a-7d3f-4a8e-9c61-2f4d5b6a7c8d",
      private_instance_id: "6f1c2d3e-4b5a-4c6d-8e7f-1a2b3c4d5e6f",
      private_instance_index: "12",
    }),
  );
  t.equal(ok.privateInstanceId, "6f1c2d3e-4b5a-4c6d-8e7f-1a2b3c4d5e6f");
  t.equal(decodeRegister(bytes({ ...minimal, private_instance_index: 3 })).privateInstanceIndex, "3");
  t.equal(decodeRegister(bytes({ ...minimal, app: "a".repeat(128) })).app.length, 128);
});

t.test("route_service_url is an absolute http(s) URL of visible ASCII", async (t) => {
  for (const v of [
    "rs.example.com",
    "/relative",
    "ftp://rs.example.com",
    "http://rs.example.com/a b",
    "http://rs.example.com/\r\nX: y",
    "http://user:pw@rs.example.com",
    "http://",
    `http://rs.example.com/${"a".repeat(2048)}`,
  ]) {
    t.equal(
      codeOf(bytes({ ...minimal, route_service_url: v })),
      "KILN_MSG_BAD_ROUTE_SERVICE_URL",
      JSON.stringify(v),
    );
  }
  t.equal(
    decodeRegister(bytes({ ...minimal, route_service_url: "http://10.0.0.9:8000/rs?x=1" })).routeServiceUrl,
    "http://10.0.0.9:8000/rs?x=1",
  );
});

t.test("unregister uses the same validation and names its subject", async (t) => {
  t.equal(decodeUnregister(bytes(minimal)).port, 61001);
  t.throws(() => decodeUnregister(bytes({ ...minimal, port: 0 })), {
    code: "KILN_MSG_BAD_PORT",
    message: /router\.unregister/,
  });
  t.equal(codeOf(bytes("nope"), decodeUnregister), "KILN_MSG_NOT_JSON");
});

t.test("encodeRegistryMessage round-trips through the decoder", async (t) => {
  const full: RegistryMessage = {
    host: "127.0.0.1",
    port: 8081,
    uris: ["a.localhost", "b.localhost/x"],
    app: "app",
    privateInstanceId: "id",
    privateInstanceIndex: "0",
    tags: { k: "v" },
    staleThresholdInSeconds: 60,
    routeServiceUrl: "https://rs",
    options: { loadBalancing: "hash", hashHeader: "X-H", hashBalance: 1.5, maxConnsPerBackend: 9 },
    endpointUpdatedAtNs: 1732540000123456789n,
    availabilityZone: "z",
    isolationSegment: "i",
    serverCertDomainSan: "s",
    tlsPort: 8443,
    protocol: "http1",
  };
  t.same(decodeRegister(encodeRegistryMessage(full)), full);
  const text = new TextDecoder().decode(encodeRegistryMessage(full));
  t.match(text, /"endpoint_updated_at_ns":1732540000123456789}$/);
  t.match(text, /"private_instance_id":"id"/);
  const small = decodeRegister(encodeRegistryMessage({ host: "h", port: 1, uris: ["u"] }));
  t.equal(small.endpointUpdatedAtNs, 0n);
  t.equal(small.options.loadBalancing, null);
});

t.test("router.start / greet reply decode and encode", async (t) => {
  const start = {
    id: "router-1",
    hosts: ["10.0.0.1"],
    minimumRegisterIntervalInSeconds: 20,
    pruneThresholdInSeconds: 120,
  };
  t.same(decodeRouterStart(encodeRouterStart(start)), start);
  t.same(decodeRouterStart(bytes({ ...start, extra: 1, hosts: undefined })).hosts, []);
  for (const bad of [
    { ...start, id: "" },
    { ...start, id: 7 },
    { ...start, hosts: "10.0.0.1" },
    { ...start, hosts: [1] },
    { ...start, minimumRegisterIntervalInSeconds: 0 },
    { ...start, minimumRegisterIntervalInSeconds: "20" },
    { ...start, pruneThresholdInSeconds: -1 },
  ]) {
    t.throws(() => decodeRouterStart(bytes(bad)), { code: "KILN_MSG_INVALID_FIELD" }, JSON.stringify(bad));
  }
  t.throws(() => decodeRouterStart(bytes("x")), { code: "KILN_MSG_NOT_JSON" });
  t.throws(() => decodeRouterStart(new Uint8Array(1024 * 1024)), { code: "KILN_MSG_TOO_LARGE" });
  t.throws(() => decodeRouterStart(bytes("{}"), "router.greet"), { message: /router\.greet/ });
});

t.test("toEndpointSpec / toPoolOptions apply gorouter's defaults", async (t) => {
  const msg = decodeRegister(bytes({ ...minimal, tags: { a: "b" } }));
  t.same(toEndpointSpec(msg), {
    host: "10.0.0.5",
    port: 61001,
    app: "",
    instanceId: "",
    instanceIndex: "",
    tags: { a: "b" },
    availabilityZone: "",
    staleThresholdSec: 120,
    serverCertDomainSan: "",
    tlsPort: 0,
    protocol: "",
    updatedAtNs: 0n,
  });
  t.same(toPoolOptions(msg), {
    loadBalancing: "round-robin",
    hashHeader: "",
    hashBalance: 0,
    maxConnsPerBackend: 0,
    routeServiceUrl: "",
  });
  t.equal(toPoolOptions(msg, "least-connection").loadBalancing, "least-connection");
  t.equal(toEndpointSpec(msg, 30).staleThresholdSec, 30);

  const full = decodeRegister(
    bytes({
      ...minimal,
      app: "app",
      private_instance_id: "i",
      private_instance_index: "4",
      stale_threshold_in_seconds: 45,
      endpoint_updated_at_ns: 99,
      route_service_url: "http://10.0.0.9:8000/",
      options: { loadbalancing: "hash", hash_header: "X-K", hash_balance: "1.25", max_conns_per_backend: 7 },
    }),
  );
  const spec = toEndpointSpec(full);
  t.equal(spec.staleThresholdSec, 45);
  t.equal(spec.instanceId, "i");
  t.equal(spec.instanceIndex, "4");
  t.equal(spec.updatedAtNs, 99n);
  t.same(toPoolOptions(full), {
    loadBalancing: "hash",
    hashHeader: "X-K",
    hashBalance: 1.25,
    maxConnsPerBackend: 7,
    routeServiceUrl: "http://10.0.0.9:8000/",
  });
});
