// The components' NATS users can do the JetStream work their flows need (DESIGN.md "State"):
// the CC writes desired state to KV, the HM reads and watches it, a DEA stores a droplet in
// the object store that the CC reads back, app logs land in KILN_LOGS and the CLI user can
// read them; a user without JetStream rights cannot touch it.
import t from "tap";
import { decode, encode } from "../../messaging/codec.js";
import { KV_APPS, logs, OBJECT_STORE_BLOBS, STREAM_LOGS, STREAM_SUBJECTS } from "../../messaging/subjects.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";

guardChildren(t);

const enc = (s: string) => new TextEncoder().encode(s);

t.test("KV, object store and the logs stream with each component's own user", async (t) => {
  const nats = await startTestNats(t);
  const cc = await nats.connect("cc");
  const hm = await nats.connect("hm");
  const dea = await nats.connect("dea");
  const cli = await nats.connect("cli");
  const router = await nats.connect("router");

  // CC: creates the desired-state bucket and writes with compare-and-set.
  const ccKv = await cc.nc.jetstream().views.kv(KV_APPS, { history: 5 });
  const rev = await ccKv.create("app-1", enc('{"instances":1}'));
  await ccKv.update("app-1", enc('{"instances":2}'), rev);
  await t.rejects(
    ccKv.update("app-1", enc('{"instances":3}'), rev),
    /wrong last sequence/,
    "a stale revision is refused",
  );

  // HM: reads and watches the same bucket.
  const hmKv = await hm.nc.jetstream().views.kv(KV_APPS, { bindOnly: true });
  t.equal((await hmKv.get("app-1"))?.string(), '{"instances":2}');
  const watch = await hmKv.watch({ key: "app-1" });
  const seen = (async () => {
    for await (const e of watch) if (e.string() === '{"instances":4}') return e.string();
    return "watch ended";
  })();
  await ccKv.put("app-1", enc('{"instances":4}'));
  const timeout = new Promise<string>((r) => setTimeout(() => r("timed out"), 5000));
  t.equal(await Promise.race([seen, timeout]), '{"instances":4}', "the HM sees the CC's update live");
  watch.stop();

  // DEA: stores a droplet; CC reads it back.
  const deaOs = await dea.nc.jetstream().views.os(OBJECT_STORE_BLOBS);
  const droplet = new Uint8Array(300_000).map((_, i) => i % 251);
  await deaOs.putBlob({ name: "droplets/app-1-v2" }, droplet);
  const ccOs = await cc.nc.jetstream().views.os(OBJECT_STORE_BLOBS);
  const read = await ccOs.getBlob("droplets/app-1-v2");
  // Compared as one Buffer: a deep comparison of 300k elements would dominate the test's time.
  t.ok(read !== null && Buffer.from(read).equals(Buffer.from(droplet)), "the CC reads the DEA's droplet");

  // CC creates KILN_LOGS; a DEA publishes log lines; the CLI user reads them back.
  const jsm = await cc.nc.jetstreamManager();
  await jsm.streams.add({ name: STREAM_LOGS, subjects: [...STREAM_SUBJECTS[STREAM_LOGS]] });
  const js = dea.nc.jetstream();
  for (let i = 0; i < 3; i++) {
    await js.publish(
      logs("app-1"),
      encode("logs", { at: Date.now(), source: "APP", stream: "stdout", text: `line ${i}` }),
    );
  }
  const consumer = await cli.nc.jetstream().consumers.get(STREAM_LOGS, { filterSubjects: logs("app-1") });
  const texts: string[] = [];
  const messages = await consumer.fetch({ max_messages: 3, expires: 2000 });
  for await (const m of messages) texts.push(decode("logs", m.data).text);
  t.same(texts, ["line 0", "line 1", "line 2"], "the CLI user reads an app's recent logs");

  // The router user has no JetStream rights at all: the server refuses the API request.
  const refused = new Promise<string>((resolve) =>
    router.on("error", (e) => e.permission && resolve(`${e.permission.operation} ${e.permission.subject}`)),
  );
  await t.rejects(router.nc.jetstreamManager({ timeout: 300 }), /TIMEOUT|timeout|503|permission/i);
  t.equal(await refused, "publish $JS.API.INFO", "router cannot use JetStream");
  // The CLI user reads but cannot delete a stream.
  const cliJsm = await cli.nc.jetstreamManager({ checkAPI: false, timeout: 300 });
  const cliRefused = new Promise<string>((resolve) =>
    cli.on("error", (e) => e.permission && resolve(`${e.permission.operation} ${e.permission.subject}`)),
  );
  await t.rejects(cliJsm.streams.delete(STREAM_LOGS), /TIMEOUT|timeout|permission/i);
  t.equal(await cliRefused, `publish $JS.API.STREAM.DELETE.${STREAM_LOGS}`, "cli cannot delete a stream");
  t.ok((await jsm.streams.info(STREAM_LOGS)).state.messages === 3, "the stream is intact");
});
