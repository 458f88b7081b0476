// `kiln cc` settings: defaults, KILN_CC_* variables, flags over both, and a malformed value
// refused with KILN_CC_CONFIG (exit 2, one line) by the real command.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import t from "tap";
import { ccConfig, ccDefaults, parseCcArgs } from "../../control/config.js";
import { kilnBin } from "../../kernel/paths.js";

t.test("defaults", async (t) => {
  const c = ccConfig({}, {});
  t.match(c, {
    port: 9022,
    host: "127.0.0.1",
    domain: "localhost",
    tokenTtlS: 86_400,
    maxPackageMb: 1024,
    discoverTimeoutMs: 2000,
    maxJsonBytes: 1024 * 1024,
  });
  t.equal(c.dataDir, resolve(".kiln"));
  t.equal(ccDefaults.natsUrl, "nats://127.0.0.1:4222");
});

t.test("environment, then flags", async (t) => {
  const env = {
    KILN_CC_DOMAIN: "apps.example.com",
    KILN_CC_TOKEN_TTL_S: "1",
    KILN_CC_PORT: "1234",
    KILN_NATS_URL: "nats://n:4222",
  };
  const c = ccConfig(parseCcArgs(["--port", "0", "--data-dir", "/tmp/x"]), env);
  t.match(c, {
    domain: "apps.example.com",
    tokenTtlS: 1,
    port: 0,
    natsUrl: "nats://n:4222",
    dataDir: "/tmp/x",
  });
});

t.test("malformed values are KILN_CC_CONFIG naming the setting", async (t) => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ KILN_CC_TOKEN_TTL_S: "0" }, /KILN_CC_TOKEN_TTL_S/],
    [{ KILN_CC_PORT: "70000" }, /KILN_CC_PORT/],
    [{ KILN_CC_DOMAIN: "Not A Domain" }, /KILN_CC_DOMAIN/],
    [{ KILN_NATS_URL: "::" }, /KILN_NATS_URL/],
    [{ KILN_CC_MAX_JSON_BYTES: "1k" }, /KILN_CC_MAX_JSON_BYTES/],
  ];
  for (const [env, name] of bad) t.throws(() => ccConfig({}, env), { code: "KILN_CC_CONFIG", message: name });
  t.throws(() => parseCcArgs(["--bogus", "1"]), { code: "KILN_CC_CONFIG" });
  t.throws(() => parseCcArgs(["--port", "x"]), { code: "KILN_CC_CONFIG", message: /--port/ });
});

t.test("kiln cc with a malformed setting exits 2 with one line", async (t) => {
  const r = spawnSync(process.execPath, [kilnBin, "cc", "--port", "nope"], {
    encoding: "utf8",
    timeout: 20_000,
  });
  t.equal(r.status, 2);
  t.match(r.stderr, /^kiln: --port must be an integer from 0 to 65535, got "nope" \(KILN_CC_CONFIG\)\n$/);
  const e = spawnSync(process.execPath, [kilnBin, "cc"], {
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, KILN_CC_TOKEN_TTL_S: "soon" },
  });
  t.equal(e.status, 2);
  t.match(e.stderr, /KILN_CC_TOKEN_TTL_S.*KILN_CC_CONFIG/);
});

t.test("kiln cc on a port already taken fails with KILN_CC_LISTEN_FAILED", async (t) => {
  const { createServer } = await import("node:net");
  const { startTestNats } = await import("../helpers/nats.js");
  const { ccDataDir } = await import("./harness.js");
  const nats = await startTestNats(t);
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as { port: number }).port;
  const cred = nats.credentials("cc");
  const r = spawnSync(
    process.execPath,
    [kilnBin, "cc", "--nats", nats.url, "--port", String(port), "--data-dir", ccDataDir(t)],
    {
      encoding: "utf8",
      timeout: 20_000,
      env: { ...process.env, KILN_NATS_USER: cred.user, KILN_NATS_PASS: cred.pass },
    },
  );
  t.equal(r.status, 1);
  t.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*\(KILN_CC_LISTEN_FAILED\)/);
});
