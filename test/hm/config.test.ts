// The Health Manager's config table: defaults, then KILN_HM_* variables, then flags; a
// malformed value of either is KILN_HM_CONFIG naming its source.
import t from "tap";
import { hmConfig, hmDefaults, parseHmArgs } from "../../hm/config.js";

t.test("defaults, variables, then flags", async (t) => {
  t.same(hmConfig({}, {}), hmDefaults);
  const env = { KILN_HM_HEARTBEAT_MS: "300", KILN_HM_LEASE_MS: "2000", KILN_NATS_URL: "nats://h:4222" };
  t.match(hmConfig({}, env), { heartbeatMs: 300, leaseMs: 2000, natsUrl: "nats://h:4222", graceMs: 30_000 });
  t.match(hmConfig(parseHmArgs(["--lease-ms", "900", "--grace-ms", "500"]), env), {
    heartbeatMs: 300,
    leaseMs: 900,
    graceMs: 500,
  });
});

t.test("malformed values are KILN_HM_CONFIG naming their source", async (t) => {
  t.throws(() => hmConfig({}, { KILN_HM_ANALYSIS_MS: "often" }), {
    code: "KILN_HM_CONFIG",
    message: /KILN_HM_ANALYSIS_MS must be an integer/,
  });
  t.throws(() => parseHmArgs(["--lease-ms", "10"]), { code: "KILN_HM_CONFIG", message: /--lease-ms/ });
  t.throws(() => parseHmArgs(["--nats", "::"]), {
    code: "KILN_HM_CONFIG",
    message: /--nats must be a NATS URL/,
  });
  t.throws(() => parseHmArgs(["--unknown", "1"]), { code: "KILN_HM_CONFIG", message: /kiln hm:/ });
});
