// A malformed setting, from the environment or a flag, stops `kiln up`, `kiln router` and
// `kiln nats` before they start anything: exit 2, one line on stderr naming the setting and
// the value, a KILN_*_CONFIG code, no stack trace. Every case of the table goes through the
// checks each command runs, in this process; one environment and one flag case per command
// also through the compiled bin, as a user meets them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { natsSettings, upConfig } from "../../cli/commands/kernel.js";
import { oneLine } from "../../cli/main.js";
import { checkProcessEnv } from "../../kernel/config.js";
import { KilnError } from "../../kernel/errors.js";
import { kilnBin } from "../../kernel/paths.js";
import { componentSettings } from "../../kernel/up.js";
import { parseRouterArgs, routerConfig } from "../../router/config.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

interface Case {
  /** The setting the error must name (variable or flag). */
  name: string;
  /** The value as the error shows it (line breaks escaped). */
  shown: string;
  env?: Record<string, string>;
  args?: string[];
  code: "KILN_KERNEL_CONFIG" | "KILN_ROUTER_CONFIG";
}

const env = (name: string, value: string, code: Case["code"], shown = value): Case => ({
  name,
  shown,
  env: { [name]: value },
  code,
});
// A value starting with a dash goes after "=" (as `--port -1` is read as a missing value).
const flag = (name: string, value: string, code: Case["code"]): Case => ({
  name,
  shown: value,
  args: value.startsWith("-") ? [`${name}=${value}`] : [name, value],
  code,
});

const K = "KILN_KERNEL_CONFIG";
const R = "KILN_ROUTER_CONFIG";

/** Settings every component command checks before it starts. */
const processWide: Case[] = [env("KILN_LOG_LEVEL", "loud", K), env("KILN_NATIVE", "yes", K)];

/** Where `kiln up` and `kiln nats` would keep their data, should a case get that far. */
const dataDir = mkdtempSync(join(tmpdir(), "kiln-config-errors-"));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

const components: Record<string, { base: string[]; cases: Case[] }> = {
  up: {
    // Random ports, so a value let through by mistake cannot take anyone's fixed port.
    base: ["--data-dir", dataDir, "--nats-port", "0", "--router-port", "0", "--router-status-port", "0"],
    cases: [
      env("KILN_NATS_PORT", "abc", K),
      env("KILN_ROUTER_PORT", "70000", K),
      env("KILN_ROUTER_STATUS_PORT", "-1", K),
      env("KILN_ROUTER_PORT", "80\n80", K, "80\\n80"),
      env("KILN_ROUTER_THREADS", "0", R),
      env("KILN_ROUTER_CONNECT_TIMEOUT_MS", "soon", R),
      env("KILN_ROUTER_UPSTREAM", "fast", R),
      env("KILN_NATS_URL", "nats://127.0.0.1:abc", R),
      flag("--nats-port", "x", K),
      flag("--router-port", "1.5", K),
      flag("--router-status-port", "65536", K),
      flag("--router-status-port", "", K),
      ...processWide,
    ],
  },
  router: {
    base: ["--nats", "nats://127.0.0.1:1", "--port", "0", "--status-port", "0", "--threads", "1"],
    cases: [
      env("KILN_ROUTER_PORT", "70000", R),
      env("KILN_ROUTER_THREADS", "0", R),
      env("KILN_ROUTER_STATUS_PORT", "-1", R),
      env("KILN_ROUTER_MAX_ATTEMPTS", "0", R),
      env("KILN_ROUTER_SLICE_US", "50", R),
      env("KILN_ROUTER_FAST_PATH", "maybe", R),
      env("KILN_ROUTER_DRAIN_TIMEOUT_MS", "1\n2", R, "1\\n2"),
      env("KILN_NATS_URL", "nats://127.0.0.1:99999", R),
      flag("--port", "x", R),
      flag("--threads", "-1", R),
      flag("--status-port", "1e9", R),
      flag("--drain-timeout-ms", "soon", R),
      flag("--nats", "nats://h:abc", R),
      flag("--trusted-proxies", "10.0.0.0/33", R),
      env("KILN_ROUTER_TRUSTED_PROXIES", "127.0.0.1,example.com", R),
      ...processWide,
    ],
  },
  nats: {
    base: ["--data-dir", dataDir, "--port", "0"],
    cases: [
      env("KILN_NATS_PORT", "abc", K),
      env("KILN_NATS_PORT", "65536", K),
      flag("--port", "x", K),
      flag("--port", "-1", K),
      flag("--cluster-port", "70000", K),
      flag("--routes", "m2:6222,not a url", K),
      flag("--routes", "nats://m2", K),
      flag("--name", "two words", K),
      flag("--cluster-name", "a/b", K),
      flag("--host", "a b", K),
      flag("--credentials", "/nonexistent/credentials.json", K),
      // A route without a cluster port (and the reverse) cannot form a JetStream cluster.
      flag("--routes", "nats://m2:6222", K),
      ...processWide,
    ],
  },
};

/** The environment without any KILN_ setting of the machine running the tests. */
const cleanEnv: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) cleanEnv[k] = v;

/**
 * What each command checks before it starts anything, in the order it does: main() checks the
 * process-wide settings, then the command its own (`kiln up` its components' too).
 */
const checks: Record<string, (argv: string[], env: NodeJS.ProcessEnv) => void> = {
  up: (argv, env) => {
    checkProcessEnv(env);
    componentSettings(upConfig(argv, env), env);
  },
  router: (argv, env) => {
    checkProcessEnv(env);
    routerConfig(parseRouterArgs(argv), env);
  },
  nats: (argv, env) => {
    checkProcessEnv(env);
    natsSettings(argv, env);
  },
};

const label = (c: Case) => `${c.name}=${JSON.stringify(c.shown)}`;

function expectProblem(t: Test, c: Case, message: string, code: string) {
  t.equal(code, c.code, `${label(c)}: ${c.code}`);
  t.notMatch(message, /\n/, `${label(c)}: one line`);
  t.match(message, c.name, `${label(c)}: names the setting`);
  t.match(message, `"${c.shown}"`, `${label(c)}: shows the value`);
}

for (const [command, { base, cases }] of Object.entries(components)) {
  t.test(`kiln ${command}: every malformed setting is refused with its code`, async (t) => {
    const check = checks[command] as (typeof checks)[string];
    for (const c of cases) {
      // Case flags come last: a repeated flag's last value is the one taken.
      try {
        check([...base, ...(c.args ?? [])], { ...cleanEnv, ...c.env });
        t.fail(`${label(c)}: accepted`);
      } catch (err) {
        t.ok(err instanceof KilnError, `${label(c)}: a coded error`);
        // As main() prints it: line breaks escaped.
        expectProblem(t, c, oneLine((err as Error).message), (err as KilnError).code);
      }
    }
  });

  // The whole command once per kind of setting, as a user meets it: exit 2, one line, no stack.
  const env = cases.find((c) => c.env !== undefined) as Case;
  const flagCase = cases.find((c) => c.args !== undefined) as Case;
  for (const c of [env, flagCase]) {
    t.test(`kiln ${command} with ${label(c)}: exit 2 and one coded line`, async (t) => {
      const r = spawnSync(process.execPath, [kilnBin, command, ...base, ...(c.args ?? [])], {
        encoding: "utf8",
        timeout: 20_000,
        env: { ...cleanEnv, ...c.env },
      });
      t.equal(r.status, 2, "exit 2");
      t.equal(r.stdout, "", "nothing on stdout");
      t.equal(r.stderr.trimEnd().split("\n").length, 1, "one line");
      const m = /^kiln: (.*) \((KILN_[A-Z_]+)\)\n$/.exec(r.stderr);
      t.ok(m, `one coded line: ${r.stderr}`);
      expectProblem(t, c, m?.[1] ?? "", m?.[2] ?? "");
    });
  }
}
