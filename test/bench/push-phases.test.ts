// The pure parts of the push bench: a push's phases from its stamped CLI output, the staging
// log's own timestamps, line splitting across chunks, and a case's summary against its target.
import t from "tap";
import {
  LineStamper,
  medianPhases,
  pushPhases,
  stagingLogTime,
  summarizeCase,
} from "../../bench/lib/push-phases.js";

const coldOutput = [
  { at: 600, text: "Creating app hello in space dev" },
  { at: 700, text: "Uploading 2 of 2 files (0.0 MiB; 0 already held)" },
  { at: 850, text: "Staging" },
  { at: 900, text: "2026-12-07T12:53:03.65+0000 [STG/0] OUT -----> Downloading app package" },
  { at: 1100, text: "2026-12-07T12:53:03.92+0000 [STG/0] OUT -----> Unpacked 2 entries, 396 bytes" },
  { at: 1500, text: "2026-12-07T12:53:04.36+0000 [STG/0] OUT -----> Droplet 714c41919b8c: 568 bytes" },
  { at: 2300, text: "Starting hello" },
  { at: 3400, text: "hello is running" },
];

t.test("staging log timestamps", async (t) => {
  t.equal(stagingLogTime(coldOutput[3]?.text ?? ""), Date.parse("2026-12-07T12:53:03.650Z"));
  t.equal(
    stagingLogTime("2026-12-07T13:53:03+0100 [STG/0] ERR x"),
    Date.parse("2026-12-07T12:53:03Z"),
    "an offset other than UTC, no fraction",
  );
  t.ok(Number.isNaN(stagingLogTime("Staging")));
  t.ok(Number.isNaN(stagingLogTime("2026-12-07T12:53:03.65+0000 [APP/0] OUT hi")), "not a staging line");
});

t.test("phases of a cold push", async (t) => {
  const p = pushPhases(coldOutput, 100, 3450, 2800);
  t.equal(p.prepare, 600);
  t.equal(p.upload, 150);
  t.equal(p.staging, 1450);
  t.equal(Math.round(p.deaStaging), 710, "first → last staging line by the DEA's clock");
  t.equal(p.startWait, 1150);
  t.equal(p.startToRouter, 500);
  t.equal(p.cli, 3350);
});

t.test("a restart counts as the start; missing lines give NaN", async (t) => {
  const p = pushPhases(
    [
      { at: 10, text: "Uploading 0 of 2 files (0.0 MiB; 2 already held)" },
      { at: 40, text: "Restarting hello" },
    ],
    0,
    100,
    120,
  );
  t.equal(p.prepare, 10);
  t.ok(Number.isNaN(p.upload), "no Staging line (a push that skips staging)");
  t.ok(Number.isNaN(p.staging));
  t.ok(Number.isNaN(p.deaStaging));
  t.equal(p.startWait, 60);
  t.equal(p.startToRouter, 80);
  const m = medianPhases([p, { ...p, prepare: 30 }, { ...p, prepare: 20 }]);
  t.equal(m.prepare, 20);
  t.ok(Number.isNaN(m.upload), "NaN when no push had the phase");
});

t.test("an unchanged push: a reused droplet is its staging, Unchanged its start", async (t) => {
  const p = pushPhases(
    [
      { at: 10, text: "Uploading 0 of 2 files (0.0 MiB; 2 already held)" },
      { at: 30, text: "Staging skipped: droplet d was built from the same files and settings" },
      { at: 35, text: "Unchanged: hello keeps running" },
    ],
    0,
    50,
    60,
  );
  t.equal(p.upload, 20);
  t.equal(p.staging, 5);
  t.equal(p.startWait, 15);
});

t.test("lines split across chunks are stamped when their end arrives", async (t) => {
  const s = new LineStamper();
  s.push("Stag", 1);
  s.push("ing\r\nStarting a", 2);
  s.push("pp\nlast", 3);
  s.end(4);
  t.same(s.lines, [
    { at: 2, text: "Staging" },
    { at: 3, text: "Starting app" },
    { at: 4, text: "last" },
  ]);
});

t.test("case summary against its target", async (t) => {
  const c = summarizeCase([2500, 1500, 1800], 2000);
  t.equal(c.minMs, 1500);
  t.equal(c.medianMs, 1800);
  t.equal(c.maxMs, 2500);
  t.equal(c.ratio, 0.9);
  t.equal(c.pass, true);
  t.equal(summarizeCase([1200], 1000).pass, false);
  t.equal(summarizeCase([], 1000).pass, false, "no sample is no pass");
});
