// `kiln dea` settings: defaults, environment, flags; a malformed value is exit 2 and one
// KILN_DEA_CONFIG line before anything starts (run through the compiled bin, as a user does).
import { spawnSync } from "node:child_process";
import { totalmem } from "node:os";
import t from "tap";
import { deaConfig, deaDefaults, parseDeaArgs } from "../../dea/config.js";
import { kilnBin } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

t.test("defaults, environment, then flags", async (t) => {
  const d = deaConfig({}, {});
  t.equal(d.deaId, "", "no id: startDea picks a random one");
  t.equal(d.isolation, "runc");
  t.equal(d.zone, "default");
  t.same(d.stacks, ["cflinuxfs4"]);
  t.equal(d.advertiseIntervalMs, 5000);
  t.equal(
    d.memoryMb,
    Math.floor((totalmem() / 1024 / 1024) * 0.75),
    "memory: three quarters of the machine's",
  );
  t.ok(d.diskMb > 0, "disk: a share of the data dir's file system");
  t.equal(deaDefaults.memoryMb, 0, "the table keeps 0 = measured");

  const env = {
    KILN_DEA_ID: "dea-env",
    KILN_NATS_URL: "nats://10.0.0.1:4222",
    KILN_DEA_ZONE: "z1",
    KILN_DEA_STACKS: "a, b",
    KILN_DEA_MEMORY_MB: "1024",
    KILN_DEA_DISK_MB: "2048",
    KILN_DEA_ISOLATION: "none",
    KILN_DEA_ADVERTISE_INTERVAL_MS: "250",
    KILN_DEA_HEARTBEAT_INTERVAL_MS: "300",
    KILN_DEA_STOP_GRACE_MS: "0",
    KILN_DEA_LOG_RATE: "50",
    KILN_DEA_DROPLET_CACHE_MB: "64",
    KILN_DEA_UID_BASE: "30000",
    KILN_DEA_STAGING_TIMEOUT_MS: "60000",
    KILN_DEA_TEST_RESERVATIONS: "app-1:2:128:256",
  };
  const e = deaConfig({}, env);
  t.match(e, {
    deaId: "dea-env",
    natsUrl: "nats://10.0.0.1:4222",
    zone: "z1",
    stacks: ["a", "b"],
    memoryMb: 1024,
    diskMb: 2048,
    isolation: "none",
    advertiseIntervalMs: 250,
    heartbeatIntervalMs: 300,
    stopGraceMs: 0,
    logRate: 50,
    dropletCacheMb: 64,
    uidBase: 30000,
    stagingTimeoutMs: 60000,
    testReservations: [{ app: "app-1", count: 2, memoryMb: 128, diskMb: 256 }],
  });
  const f = deaConfig(parseDeaArgs(["--id", "dea-flag", "--memory-mb", "512", "--isolation", "runc"]), env);
  t.equal(f.deaId, "dea-flag", "a flag beats the environment");
  t.equal(f.memoryMb, 512);
  t.equal(f.isolation, "runc");
  t.equal(f.zone, "z1", "the environment stays where no flag is given");
});

t.test("kiln dea: a malformed setting is exit 2 and one coded line", async (t) => {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) clean[k] = v;
  // [setting named in the error, value as shown, env, flags]
  const cases: [string, string, Record<string, string>, string[]][] = [
    ["KILN_DEA_MEMORY_MB", "lots", { KILN_DEA_MEMORY_MB: "lots" }, []],
    ["KILN_DEA_MEMORY_MB", "-1", { KILN_DEA_MEMORY_MB: "-1" }, []],
    ["KILN_DEA_DISK_MB", "1.5", { KILN_DEA_DISK_MB: "1.5" }, []],
    ["KILN_DEA_DISK_MB", "4294967296", { KILN_DEA_DISK_MB: "4294967296" }, []],
    ["KILN_DEA_ISOLATION", "docker", { KILN_DEA_ISOLATION: "docker" }, []],
    ["KILN_DEA_ID", "a.b", { KILN_DEA_ID: "a.b" }, []],
    ["KILN_DEA_STACKS", ",,", { KILN_DEA_STACKS: ",," }, []],
    ["KILN_DEA_ZONE", "z 1", { KILN_DEA_ZONE: "z 1" }, []],
    ["KILN_DEA_ADVERTISE_INTERVAL_MS", "5", { KILN_DEA_ADVERTISE_INTERVAL_MS: "5" }, []],
    ["KILN_DEA_ADVERTISE_INTERVAL_MS", "1\\n2", { KILN_DEA_ADVERTISE_INTERVAL_MS: "1\n2" }, []],
    ["KILN_DEA_TEST_RESERVATIONS", "app:x:1:1", { KILN_DEA_TEST_RESERVATIONS: "app:x:1:1" }, []],
    ["KILN_NATS_URL", "nats://h:abc", { KILN_NATS_URL: "nats://h:abc" }, []],
    ["--memory-mb", "x", {}, ["--memory-mb", "x"]],
    ["--disk-mb", "-5", {}, ["--disk-mb=-5"]],
    ["--isolation", "gvisor", {}, ["--isolation", "gvisor"]],
    ["--id", "dea*", {}, ["--id", "dea*"]],
    ["--advertise-interval-ms", "soon", {}, ["--advertise-interval-ms", "soon"]],
    ["KILN_DEA_UID_BASE", "0", { KILN_DEA_UID_BASE: "0" }, []],
    ["--uid-base", "65534", {}, ["--uid-base", "65534"]],
    ["--log-rate", "0", {}, ["--log-rate", "0"]],
    ["--stop-grace-ms", "-1", {}, ["--stop-grace-ms=-1"]],
    ["KILN_DEA_HEARTBEAT_INTERVAL_MS", "1", { KILN_DEA_HEARTBEAT_INTERVAL_MS: "1" }, []],
    ["--droplet-cache-mb", "0", {}, ["--droplet-cache-mb", "0"]],
    ["--staging-timeout-ms", "10", {}, ["--staging-timeout-ms", "10"]],
    ["--nats", "nats://127.0.0.1:99999", {}, ["--nats", "nats://127.0.0.1:99999"]],
  ];
  // Every case in process (the same parse `kiln dea` runs first); the process-level contract
  // (exit 2, one line on stderr, nothing on stdout) is checked on two of them, one from the
  // environment and one from a flag, since a process per case costs a second under load.
  const asProcess = new Set(["KILN_DEA_MEMORY_MB", "--isolation"]);
  for (const [name, shown, env, args] of cases) {
    const label = `${name}=${JSON.stringify(shown)}`;
    let message = "";
    try {
      deaConfig(parseDeaArgs(args), { ...clean, ...env });
      t.fail(`${label}: accepted`);
    } catch (err) {
      t.equal((err as { code?: string }).code, "KILN_DEA_CONFIG", `${label}: KILN_DEA_CONFIG`);
      message = (err as Error).message;
    }
    t.match(message, name, `${label}: names the setting`);
    // The message holds the value as given; the CLI escapes control characters when it prints.
    t.ok(message.includes(`"${shown.replaceAll("\\n", "\n")}"`), `${label}: shows the value`);
    if (!asProcess.has(name)) continue;
    asProcess.delete(name);
    const r = spawnSync(process.execPath, [kilnBin, "dea", "--nats", "nats://127.0.0.1:1", ...args], {
      encoding: "utf8",
      timeout: 20_000,
      env: { ...clean, ...env },
    });
    t.equal(r.status, 2, `${label}: exit 2`);
    t.equal(r.stdout, "", `${label}: nothing on stdout`);
    t.equal(r.stderr.trimEnd().split("\n").length, 1, `${label}: one line`);
    t.match(r.stderr, "(KILN_DEA_CONFIG)", `${label}: KILN_DEA_CONFIG`);
    t.match(r.stderr, name, `${label}: names the setting`);
    t.match(r.stderr, `"${shown}"`, `${label}: shows the value`);
  }
  t.equal(asProcess.size, 0, "both process-level cases ran");
  const r = spawnSync(process.execPath, [kilnBin, "dea", "--frobnicate", "1"], {
    encoding: "utf8",
    env: clean,
  });
  t.equal(r.status, 2, "an unknown flag: exit 2");
  t.match(r.stderr, "(KILN_DEA_CONFIG)");
});
