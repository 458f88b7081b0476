// `kiln bench` as a user runs it: the compiled kiln in a child process loading a real node:http
// server started here (the system under load), with an empty KILN_HOME.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";
import { freePort } from "../helpers/ports.js";

guardChildren(t);

const home = mkdtempSync(join(tmpdir(), "kiln-bench-home-"));
t.teardown(() => rmSync(home, { recursive: true, force: true }));

const env: NodeJS.ProcessEnv = { KILN_HOME: home };
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) env[k] ??= v;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function kiln(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [kilnBin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
}

/** A server on a loopback port of its own, closed at the end of the test file. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const addr = server.address();
  return `http://127.0.0.1:${typeof addr === "object" && addr !== null ? addr.port : 0}/`;
}

interface Summary {
  requests: number;
  duration_s: number;
  req_per_s: number;
  latency_ms: { mean: number; p50: number; p90: number; p99: number; max: number };
  errors: {
    total: number;
    non_2xx: Record<string, number>;
    status_codes: Record<string, number>;
    timeouts: number;
    connection: Record<string, number>;
  };
}
interface Side {
  name: string;
  url: string;
  summary: Summary;
  rounds: Summary[];
}
interface Report {
  settings: { connections: number; duration_s: number; rate: number | null; method: string; rounds: number };
  target: Side;
  reference?: Side;
  ratio?: { req_per_s: number | null; latency_p50: number | null; latency_p99: number | null };
}

const ok = await serve((_req, res) => res.end("ok\n"));

t.test("a run reports sane numbers as one JSON object, and no progress off a terminal", async (t) => {
  const r = await kiln("bench", ok, "-d", "1", "-c", "4", "--json");
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, "");
  const report = JSON.parse(r.stdout) as Report;
  t.same(report.settings, { connections: 4, duration_s: 1, rate: null, method: "GET", rounds: 1 });
  t.equal(report.reference, undefined);
  const s = report.target.summary;
  t.equal(report.target.url, ok);
  t.ok(s.requests > 0, `requests ${s.requests}`);
  t.ok(s.duration_s >= 0.9 && s.duration_s < 3, `duration ${s.duration_s}`);
  const l = s.latency_ms;
  t.ok(l.p50 > 0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max, `latency ${JSON.stringify(l)}`);
  t.ok(Math.abs(s.req_per_s - s.requests / s.duration_s) <= 0.01 * s.req_per_s, `req/s ${s.req_per_s}`);
  t.equal(s.errors.total, 0);
  t.same(report.target.rounds, [s]);
});

t.test("half the answers 500: 5xx errors with their status, in JSON and in the table; exit 0", async (t) => {
  // One server per run, so that each run's answers alternate strictly; the table's run at a held
  // rate leaves the cores to the measured one.
  const flakyServer = () => {
    let n = 0;
    return serve((_req, res) => {
      res.statusCode = n++ % 2 === 0 ? 200 : 500;
      res.end("x");
    });
  };
  const [flaky, other] = await Promise.all([flakyServer(), flakyServer()]);
  const [r, table] = await Promise.all([
    kiln("bench", flaky, "-d", "1", "-c", "4", "--json"),
    kiln("bench", other, "-d", "1", "-c", "2", "-R", "200"),
  ]);
  t.equal(r.status, 0, r.stderr);
  const s = (JSON.parse(r.stdout) as Report).target.summary;
  const fives = s.errors.non_2xx["5xx"] ?? 0;
  // Requests cut short when the run stops are answered but never counted: off by a few, no more.
  t.ok(Math.abs(fives - s.requests / 2) <= 8, `5xx ${fives} of ${s.requests}`);
  t.equal(s.errors.status_codes["500"], fives);
  t.equal(s.errors.total, fives);
  t.same(s.errors.non_2xx, { "1xx": 0, "3xx": 0, "4xx": 0, "5xx": fives });
  t.equal(s.errors.timeouts, 0);
  t.same(s.errors.connection, {});

  t.equal(table.status, 0, table.stderr);
  const lines = table.stdout.trimEnd().split("\n");
  t.equal(lines.length, 2, table.stdout);
  t.match(lines[0], /^target\s+req\/s\s+p50 ms\s+p90 ms\s+p99 ms\s+max ms\s+requests\s+errors$/);
  t.match(
    lines[1],
    // Latencies print with two, one or no decimals by size (no decimals from 100 ms up).
    new RegExp(`^${other.replaceAll(".", "\\.")}\\s+\\d+(\\s+\\d+(\\.\\d+)?){4}\\s+\\d+\\s+5xx \\d+(, .+)?$`),
  );
});

t.test("method, body and headers reach the target; -b alone means POST; -R holds the rate", async (t) => {
  const seen = new Set<string>();
  const echo = await serve((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      seen.add(`${req.method} ${req.headers["x-kiln-test"]} ${body}`);
      res.end();
    });
  });
  // At a held rate, so the two runs side by side leave the machine's cores to each other.
  const put = ["-m", "put", "-b", "hello", "-H", "X-Kiln-Test: yes", "--json"];
  const [r, post] = await Promise.all([
    kiln("bench", echo, "-d", "1", "-c", "2", "-R", "100", ...put),
    kiln("bench", echo, "-d", "1", "-c", "1", "-R", "100", "--body", "{}", "--header=x-kiln-test:2"),
  ]);
  t.equal(r.status, 0, r.stderr);
  t.equal(post.status, 0, post.stderr);
  t.same([...seen].sort(), ["POST 2 {}", "PUT yes hello"]);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.settings.rate, 100);
  t.equal(report.settings.method, "PUT");
  // 100 a second over about a second: far below what an unthrottled run does (thousands).
  const n = report.target.summary.requests;
  t.ok(n >= 30 && n <= 150, `requests ${n} at -R 100`);
});

t.test("an unreachable URL: exit 1 with one coded line, before any load", async (t) => {
  const port = await freePort();
  const started = Date.now();
  const [r, ref] = await Promise.all([
    kiln("bench", `http://127.0.0.1:${port}/`, "-d", "5", "--json"),
    kiln("bench", ok, "--compare", `http://127.0.0.1:${port}/`, "-d", "5"),
  ]);
  t.equal(r.status, 1);
  t.equal(r.stdout, "");
  t.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  t.match(
    r.stderr,
    /^kiln: cannot reach http:\/\/127\.0\.0\.1:\d+\/: ECONNREFUSED \(KILN_CLI_BENCH_UNREACHABLE\)$/m,
  );
  t.ok(Date.now() - started < 4000, "failed without running the 5 s load");
  t.equal(ref.status, 1);
  t.match(ref.stderr, /KILN_CLI_BENCH_UNREACHABLE/);
});

t.test("bad flags are usage errors: exit 2 with one coded line naming the flag", async (t) => {
  const runs = await Promise.all([
    kiln("bench", ok, "-c", "0"),
    kiln("bench", ok, "--no-such-flag"),
    kiln("bench"),
  ]);
  for (const [r, message] of [
    [runs[0], /^kiln: kiln bench: -c wants a whole number from 1 to 10000, not "0" \(KILN_CLI_USAGE\)$/m],
    [runs[1], /^kiln: kiln bench: .*--no-such-flag.*\(KILN_CLI_USAGE\)$/m],
    [runs[2], /^kiln: kiln bench: missing argument \(KILN_CLI_USAGE\)$/m],
  ] as const) {
    t.equal(r?.status, 2, r?.stderr);
    t.equal(r?.stdout, "");
    t.equal(r?.stderr.trim().split("\n").length, 1, r?.stderr);
    t.match(r?.stderr, message);
  }
});

t.test("every flag is checked before anything is loaded or logged in to", async (t) => {
  // The command itself, in this process, for the many cases: each start of the CLI costs most
  // of a second on a small machine, and the exit code of a usage error is checked above.
  process.env.KILN_HOME = home;
  const { benchCommand } = await import("../../cli/commands/bench.js");
  const cases: [string[], RegExp][] = [
    [["-c", "ten"], /-c wants a whole number/],
    [["-c", "10001"], /-c wants a whole number from 1 to 10000/],
    [["-d", "1.5"], /-d wants a whole number/],
    [["-d", "0"], /-d wants a whole number/],
    [["-R", "0"], /-R wants a whole number/],
    [["-m", "GE T"], /-m wants an HTTP method/],
    [["-H", "no colon"], /-H wants "Name: value"/],
    [["-H", ": empty name"], /-H wants "Name: value"/],
    [["--compare", "ftp://x/"], /not an http or https URL/],
    [["--compare", "nope"], /"nope" is not a URL/],
    [["--rounds", "2"], /--rounds needs --compare/],
    [["--compare", ok, "--rounds", "0"], /--rounds wants a whole number/],
  ];
  for (const [args, message] of cases) {
    // An app NAME as the target: a check that let a bad flag through would fail on the missing
    // login instead, with another code.
    await t.rejects(
      benchCommand.run(["myapp", ...args]),
      { code: "KILN_CLI_USAGE", message },
      args.join(" "),
    );
  }
  await t.rejects(benchCommand.run(["gopher://x/"]), {
    code: "KILN_CLI_USAGE",
    message: /not an http or https URL/,
  });
});

t.test("an app NAME without a login: the not-logged-in coded error", async (t) => {
  const r = await kiln("bench", "myapp", "-d", "1");
  t.equal(r.status, 1);
  t.match(r.stderr, /^kiln: no API set: run kiln login -a URL \(KILN_CLI_NOT_LOGGED_IN\)$/m);
});

t.test(
  "--compare against a server 5 ms slower: rounds interleaved, medians, ratio of req/s well above 1",
  async (t) => {
    const slow = await serve((_req, res) => {
      setTimeout(() => res.end("ok\n"), 5);
    });
    const r = await kiln("bench", ok, "--compare", slow, "--rounds", "2", "-d", "1", "-c", "1", "--json");
    t.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    t.equal(report.settings.rounds, 2);
    t.equal(report.target.rounds.length, 2);
    t.equal(report.reference?.rounds.length, 2);
    t.equal(report.reference?.url, slow);
    const fast = report.target.summary;
    const ref = report.reference?.summary as Summary;
    // With one connection the slow server answers at most ~200 times a second (5 ms each) while
    // the fast one answers thousands: 1.2 holds with a wide margin on a busy machine, and a
    // swapped or constant ratio (1) fails it.
    t.ok((report.ratio?.req_per_s ?? 0) > 1.2, `ratio ${JSON.stringify(report.ratio)}`);
    t.ok(Math.abs((report.ratio?.req_per_s ?? 0) - fast.req_per_s / ref.req_per_s) < 1e-9);
    t.ok(ref.latency_ms.p50 >= 5, `reference p50 ${ref.latency_ms.p50}`);
    t.ok((report.ratio?.latency_p50 ?? 1) < 1);
    // The summary is the median of the rounds: for two rounds, their mean.
    const rps = report.target.rounds.map((x) => x.req_per_s);
    t.ok(Math.abs(fast.req_per_s - ((rps[0] ?? 0) + (rps[1] ?? 0)) / 2) < 1e-6);
    t.equal(
      fast.requests,
      report.target.rounds.reduce((a, x) => a + x.requests, 0),
    );
  },
);

t.test(
  "the latency histogram's percentiles stay within its 1.6 % resolution of the exact ones",
  async (t) => {
    const { LatencyHistogram } = await import("../../cli/bench/histogram.js");
    // Fixed pseudo-random spreads (no Math.random, so a failure repeats): sub-millisecond,
    // around a millisecond, and long-tailed up to seconds.
    let seed = 42;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (const draw of [() => 0.03 + next() * 0.2, () => next() * 2, () => Math.exp(next() * 8)]) {
      const h = new LatencyHistogram();
      const values: number[] = [];
      for (let i = 0; i < 20_000; i++) {
        const v = draw();
        values.push(v);
        h.recordMs(v);
      }
      values.sort((a, b) => a - b);
      for (const q of [0.5, 0.9, 0.99]) {
        const exact = values[Math.ceil(q * values.length) - 1] ?? 0;
        // Half a bucket of relative error, plus the microsecond each value is rounded to.
        t.ok(
          Math.abs(h.percentileMs(q) - exact) <= exact / 64 + 0.001,
          `p${q * 100}: ${h.percentileMs(q)} vs ${exact}`,
        );
      }
      t.equal(h.maxMs(), Math.round((values.at(-1) ?? 0) * 1000) / 1000);
      t.equal(h.count, values.length);
    }
    t.equal(new LatencyHistogram().percentileMs(0.5), 0);
  },
);
