// Log shipping: the line splitter's cases, and a real flood: one process writing as fast as
// it can next to a quiet one, both shipped to a real nats-server. The flood is cut to its
// rate and says how much it dropped; every quiet line arrives, promptly; KILN_LOGS holds them.
import { spawn } from "node:child_process";
import t from "tap";
import { LineSplitter, pipeLines } from "../../dea/logs/lines.js";
import { LogShipper } from "../../dea/logs/shipper.js";
import { createLogger } from "../../kernel/log.js";
import { decode, type LogLine } from "../../messaging/codec.js";
import { blobStore, ensureLogStream, logsBoundsDefault } from "../../messaging/jetstream.js";
import { STREAM_LOGS } from "../../messaging/subjects.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";

guardChildren(t);
const quiet = createLogger("test", { write: () => {} });

/** chunks in → lines out, with a small max so cuts are visible. */
const splitCases: { name: string; chunks: (string | number[])[]; max?: number; lines: string[] }[] = [
  { name: "one line", chunks: ["a\n"], lines: ["a"] },
  { name: "two lines in one chunk", chunks: ["a\nb\n"], lines: ["a", "b"] },
  { name: "a line across chunks", chunks: ["ab", "c\nd", "e\n"], lines: ["abc", "de"] },
  { name: "CRLF", chunks: ["a\r\nb\r", "\n"], lines: ["a", "b"] },
  { name: "empty lines kept", chunks: ["\n\nx\n"], lines: ["", "", "x"] },
  { name: "last line without newline", chunks: ["a\nrest"], lines: ["a", "rest"] },
  { name: "long line cut", chunks: ["abcdefghij\n"], max: 4, lines: ["abcd", "efgh", "ij"] },
  { name: "long line across chunks cut", chunks: ["abc", "def", "gh"], max: 4, lines: ["abcd", "efgh"] },
  // "é" is C3 A9: a cut at 4 bytes would split it, so the piece ends before it.
  { name: "cut never splits a character", chunks: ["abcé\n"], max: 4, lines: ["abc", "é"] },
  { name: "three-byte characters cut between them", chunks: ["€€€€€\n"], max: 10, lines: ["€€€", "€€"] },
  {
    name: "a character split between reads stays whole",
    chunks: [
      [0x61, 0xe2, 0x82],
      [0xac, 0x0a],
    ],
    lines: ["a€"],
  },
];

t.test("line splitter", async (t) => {
  for (const c of splitCases) {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l), c.max);
    for (const chunk of c.chunks) s.push(Buffer.from(chunk as string));
    s.end();
    t.same(out, c.lines, c.name);
  }
});

t.test("pipeLines reads a real process's output to its end", async (t) => {
  const child = spawn(process.execPath, ["-e", "for (let i = 0; i < 1000; i++) console.log('line ' + i)"]);
  const lines: string[] = [];
  await pipeLines(child.stdout, (l) => lines.push(l));
  t.equal(lines.length, 1000);
  t.equal(lines[999], "line 999");
});

t.test("a flood is cut to its rate and reports its drops; a quiet neighbour loses nothing", async (t) => {
  const nats = await startTestNats(t);
  const dea = await nats.connect("dea");
  await ensureLogStream(dea.nc, 1);
  await ensureLogStream(dea.nc, 1); // idempotent
  const info = await (await dea.nc.jetstreamManager()).streams.info(STREAM_LOGS);
  t.equal(info.config.max_bytes, logsBoundsDefault.maxBytes, "KILN_LOGS is bounded by size");
  t.equal(info.config.max_age, logsBoundsDefault.maxAgeMs * 1_000_000, "and by age");
  await blobStore(dea.nc, 1);

  const cli = await nats.connect("cli");
  const seen: { app: string; line: LogLine; receivedAt: number }[] = [];
  cli.nc.subscribe("logs.*", {
    callback: (_e, m) =>
      seen.push({ app: m.subject.slice(5), line: decode("logs", m.data), receivedAt: Date.now() }),
  });
  await cli.flush();

  const shipper = new LogShipper({
    bus: dea,
    log: quiet,
    rate: { linesPerSecond: 500, burst: 200 },
    reportIntervalMs: 200,
  });
  t.teardown(() => shipper.stop());
  const flood = spawn(process.execPath, [
    "-e",
    "const end = Date.now() + 1500; let i = 0; const w = () => { while (Date.now() < end) { if (!process.stdout.write('flood ' + i++ + '\\n')) return process.stdout.once('drain', w); } }; w();",
  ]);
  const calm = spawn(process.execPath, [
    "-e",
    "let i = 0; const t = setInterval(() => { console.log('calm ' + i + ' ' + Date.now()); if (++i === 40) clearInterval(t); }, 30);",
  ]);
  const started = Date.now();
  await Promise.all([
    shipper.outlet({ app: "flood-app", source: "APP", index: 0 }).attach("stdout", flood.stdout),
    shipper.outlet({ app: "calm-app", source: "APP", index: 3 }).attach("stdout", calm.stdout),
  ]);
  const elapsed = Date.now() - started;
  shipper.flush();
  await dea.flush();
  await cli.flush();

  const calmLines = seen.filter((s) => s.app === "calm-app");
  t.equal(calmLines.length, 40, "every quiet line arrived");
  t.equal(calmLines[0]?.line.index, 3);
  t.equal(calmLines[0]?.line.source, "APP");
  const lags = calmLines.map((s) => s.receivedAt - Number(s.line.text.split(" ")[2]));
  const worst = Math.max(...lags);
  t.comment(`quiet lines: worst write→delivery ${worst} ms next to the flood`);
  t.ok(worst < 250, "the flood never held a quiet line back");

  const floodLines = seen.filter((s) => s.app === "flood-app" && s.line.text.startsWith("flood "));
  const reports = seen.filter((s) => s.app === "flood-app" && s.line.text.startsWith("kiln: "));
  const dropped = reports.reduce((n, r) => n + Number(/(\d+) log line/.exec(r.line.text)?.[1] ?? 0), 0);
  t.comment(`flood: ${floodLines.length} lines published, ${dropped} dropped in ${elapsed} ms`);
  t.ok(floodLines.length <= 200 + (500 * elapsed) / 1000 + 50, "the flood was held to burst + rate");
  t.ok(reports.length > 0 && dropped > 0, "and its drops were reported");
  t.equal(dropped, shipper.counters.dropped, "every dropped line is counted in a report");

  // KILN_LOGS kept what was published (`kiln logs --recent` reads from there).
  const again = await (await dea.nc.jetstreamManager()).streams.info(STREAM_LOGS);
  t.equal(again.state.messages, shipper.counters.published);
});
