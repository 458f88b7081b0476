// The controller's store against a real nats-server, connected as the `cc` user: compare-and-set
// updates lose no write under contention from two connections, creates and uniqueness keys
// admit exactly one winner, and the admin bootstrap writes its file once.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { ensureAdmin, newPassword } from "../../control/auth/bootstrap.js";
import { login } from "../../control/auth/tokens.js";
import { claim } from "../../control/store/claim.js";
import { UNCHANGED } from "../../control/store/kv.js";
import { type AppRecord, keys } from "../../control/store/records.js";
import { openStore } from "../../control/store/store.js";
import { createLogger } from "../../kernel/log.js";
import { startTestNats } from "../helpers/nats.js";
import { ccDataDir } from "./harness.js";

const quiet = createLogger("cc", { write: () => {} });
const mute = (): void => {};

function app(guid: string): AppRecord {
  const now = new Date().toISOString();
  return {
    guid,
    name: "a",
    space_guid: "s",
    state: "STOPPED",
    instances: 0,
    memory_in_mb: 256,
    disk_in_mb: 1024,
    command: null,
    buildpacks: [],
    environment_variables: {},
    health_check: { type: "port", endpoint: null, timeout: null },
    droplet_guid: null,
    version: "v0",
    created_at: now,
    updated_at: now,
  };
}

t.test("store", async (t) => {
  const nats = await startTestNats(t);
  const [c1, c2] = await Promise.all([nats.connect("cc"), nats.connect("cc")]);
  const s1 = await openStore(c1.nc, 1);
  // Opening again (another controller) finds the same buckets and stream.
  const s2 = await openStore(c2.nc, 1);

  await t.test("50 concurrent increments from two connections: none lost", async (t) => {
    t.ok(await s1.apps.create(keys.app("app1"), app("app1")));
    const stores = [s1, s2];
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (stores[i % 2] as typeof s1).apps.update(keys.app("app1"), (a) => ({
          ...a,
          instances: a.instances + 1,
        })),
      ),
    );
    const got = await s2.apps.get(keys.app("app1"));
    t.equal(got?.value.instances, 50);
  });

  await t.test("create twice: the second finds the name taken", async (t) => {
    t.ok(await s1.apps.create(keys.app("app2"), app("app2")));
    t.equal(await s2.apps.create(keys.app("app2"), app("app2")), null);
  });

  await t.test("two concurrent creates of one uniqueness key: one wins", async (t) => {
    for (let round = 0; round < 10; round++) {
      const key = keys.appName("space1", `name${round}`);
      const results = await Promise.all([
        s1.appNames.create(key, { guid: "from-1" }),
        s2.appNames.create(key, { guid: "from-2" }),
      ]);
      t.equal(results.filter((r) => r !== null).length, 1, `round ${round}: exactly one create won`);
      const held = await s1.appNames.get(key);
      t.equal(held?.value.guid, results[0] !== null ? "from-1" : "from-2", "the winner's value is kept");
    }
  });

  await t.test("a uniqueness key left without its record is released only after the grace", async (t) => {
    const key = keys.appName("space2", "orphan");
    const live = async (g: string) => (await s1.apps.get(keys.app(g))) !== null;
    t.ok(await s1.appNames.create(key, { guid: "never-written" }));
    t.same(
      await claim(s2.appNames, key, { guid: "new" }, live),
      { guid: "never-written" },
      "a young key may be in flight",
    );
    t.equal(await claim(s2.appNames, key, { guid: "new" }, live, 0), null, "an old orphan is taken over");
    t.equal((await s1.appNames.get(key))?.value.guid, "new");
    t.same(
      await claim(s1.appNames, keys.appName("space1", "name0"), { guid: "x" }, async () => true, 0),
      {
        guid: (await s1.appNames.get(keys.appName("space1", "name0")))?.value.guid,
      },
      "a live holder keeps it",
    );
  });

  await t.test("delete at a stale revision fails; create after delete works", async (t) => {
    const rev = await s1.apps.create(keys.app("app3"), app("app3"));
    await s1.apps.update(keys.app("app3"), (a) => ({ ...a, instances: 3 }));
    t.equal(await s2.apps.delete(keys.app("app3"), rev as number), false, "a revision that moved is refused");
    t.equal(await s2.apps.delete(keys.app("app3")), true);
    t.equal(await s1.apps.get(keys.app("app3")), null);
    t.equal(await s1.apps.update(keys.app("app3"), (a) => a), null, "update of a missing record is null");
    t.ok(await s1.apps.create(keys.app("app3"), app("app3")), "a deleted key can be created again");
  });

  await t.test("UNCHANGED leaves the revision as it is", async (t) => {
    const before = await s1.apps.get(keys.app("app2"));
    const after = await s1.apps.update(keys.app("app2"), () => UNCHANGED);
    t.equal(after?.revision, before?.revision);
  });

  await t.test("list('*') returns the records, not the index keys", async (t) => {
    const apps = await s1.apps.list("*");
    t.same(apps.map((a) => a.key).sort(), ["app1", "app2", "app3"]);
    t.ok((await s1.appNames.keys("name.>")).length >= 10);
  });

  await t.test("audit events are recorded and read back oldest first", async (t) => {
    await s1.audit.record({
      type: "app.create",
      actor: "u",
      target_guid: "g1",
      target_name: "n",
      space_guid: "s",
      data: {},
    });
    await s2.audit.record({
      type: "app.delete",
      actor: "u",
      target_guid: "g1",
      target_name: "n",
      space_guid: "s",
      data: {},
    });
    // Some other component's line on the stream is skipped.
    c1.publish("events.other", new TextEncoder().encode("not json"));
    await c1.flush();
    await s1.audit.record({
      type: "route.create",
      actor: "u",
      target_guid: "g2",
      target_name: "r",
      space_guid: "s",
      data: {},
    });
    const all = await s2.audit.list();
    t.same(
      all.map((e) => e.type),
      ["app.create", "app.delete", "route.create"],
    );
    const g1 = await s1.audit.list((e) => e.target_guid === "g1");
    t.equal(g1.length, 2);
  });

  await t.test("admin bootstrap: written once, 0600; a second start keeps it", async (t) => {
    const dir = ccDataDir(t);
    const [a, b] = await Promise.all([ensureAdmin(s1, dir, quiet, mute), ensureAdmin(s2, dir, quiet, mute)]);
    const file = join(dir, "admin-credentials.json");
    t.equal([a, b].filter((x) => x !== null).length, 1, "one of two concurrent starts created the admin");
    t.equal(statSync(file).mode & 0o777, 0o600);
    const first = readFileSync(file, "utf8");
    const creds = JSON.parse(first) as { user: string; password: string };
    t.equal(creds.user, "admin");
    t.equal(await ensureAdmin(s1, dir, quiet, mute), null, "a later start does nothing");
    t.equal(readFileSync(file, "utf8"), first, "and does not rewrite the file");
    const issued = await login(s2, "admin", creds.password, 60);
    t.equal(issued.user.admin, true);
    await t.rejects(login(s2, "admin", "wrong", 60), { code: "KILN_CC_UNAUTHENTICATED" });
  });
});

t.test("the admin's generated password never reads as a flag in kiln login -p", async (t) => {
  // One base64url password in 64 starts with "-": 2,000 draws all miss it by chance once in 10^13.
  const drawn = Array.from({ length: 2000 }, newPassword);
  t.same(
    drawn.filter((p) => p.startsWith("-")),
    [],
    "none starts with -",
  );
  t.ok(
    drawn.every((p) => /^[A-Za-z0-9_-]{32}$/.test(p)),
    "each is 32 base64url characters",
  );
});
