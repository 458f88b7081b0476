// The Cloud Controller's API end to end: real `kiln cc` processes (two, and a third with a 1 s
// token lifetime) against one nats-server, driven over HTTP with fetch.
import { randomBytes } from "node:crypto";
import t from "tap";
import { KV_USERS } from "../../messaging/subjects.js";
import { startTestNats } from "../helpers/nats.js";
import { adminCredentials, type CcProc, call, ccDataDir, login, startCcProc } from "./harness.js";

t.test("cloud controller API", async (t) => {
  const nats = await startTestNats(t);
  const dataDir = ccDataDir(t);
  const a = await startCcProc(t, nats, dataDir);
  const b = await startCcProc(t, nats, dataDir);
  const A = a.url;
  const B = b.url;
  const creds = adminCredentials(dataDir);
  let admin = "";
  let alice = "";
  let bob = "";
  let sa = "";
  let sb = "";
  let aliceApp = "";
  let bobApp = "";

  await t.test("info needs no token", async (t) => {
    const r = await call(A, "GET", "/v3/info");
    t.equal(r.status, 200);
    t.match(r.body, { name: "kiln", api_version: "3", domain: "localhost", version: String });
  });

  await t.test("first start wrote the admin's credentials once; the second kept them", async (t) => {
    t.equal(creds.user, "admin");
    t.equal(a.stdout.join("").includes(creds.password), true, "printed once by the first");
    t.equal(b.stdout.join(""), "", "the second printed nothing");
    t.equal(b.logs.filter((l) => l.event === "admin_created").length, 0);
  });

  await t.test("login", async (t) => {
    const ok = await call(A, "POST", "/v3/tokens", {
      body: { username: creds.user, password: creds.password },
    });
    t.equal(ok.status, 201);
    t.match(ok.body, { token: String, expires_at: String, user: { name: "admin", admin: true } });
    admin = ok.body.token;
    const wrong = await call(A, "POST", "/v3/tokens", { body: { username: "admin", password: "nope" } });
    t.equal(wrong.status, 401);
    t.equal(wrong.body.errors[0].code, "KILN_CC_UNAUTHENTICATED");
    const nobody = await call(B, "POST", "/v3/tokens", { body: { username: "nobody", password: "x" } });
    t.equal(nobody.status, 401);
  });

  await t.test("admin creates two users and two spaces", async (t) => {
    for (const name of ["alice", "bob"]) {
      const r = await call(A, "POST", "/v3/users", {
        token: admin,
        body: { username: name, password: `${name}-pw` },
      });
      t.equal(r.status, 201, name);
      t.match(r.body, { name, admin: false });
      t.notOk("password" in r.body, "no hash in the answer");
    }
    const again = await call(B, "POST", "/v3/users", {
      token: admin,
      body: { username: "alice", password: "x" },
    });
    t.equal(again.status, 422);
    t.equal(again.body.errors[0].code, "KILN_CC_NAME_TAKEN");
    const spaceA = await call(A, "POST", "/v3/spaces", { token: admin, body: { name: "space-a" } });
    const spaceB = await call(B, "POST", "/v3/spaces", { token: admin, body: { name: "space-b" } });
    t.equal(spaceA.status, 201);
    t.equal(spaceB.status, 201);
    sa = spaceA.body.guid;
    sb = spaceB.body.guid;
    const dup = await call(A, "POST", "/v3/spaces", { token: admin, body: { name: "space-a" } });
    t.equal(dup.body.errors?.[0].code, "KILN_CC_NAME_TAKEN");
    t.equal(
      (await call(A, "POST", `/v3/spaces/${sa}/members`, { token: admin, body: { username: "alice" } }))
        .status,
      204,
    );
    t.equal(
      (await call(B, "POST", `/v3/spaces/${sb}/members`, { token: admin, body: { username: "bob" } })).status,
      204,
    );
    const ghost = await call(A, "POST", `/v3/spaces/${sb}/members`, {
      token: admin,
      body: { username: "ghost" },
    });
    t.equal(ghost.status, 422);
    t.match(ghost.body.errors[0].detail, /username/);
    alice = await login(A, "alice", "alice-pw");
    bob = await login(B, "bob", "bob-pw");
    const users = await call(A, "GET", "/v3/users", { token: admin });
    t.same(users.body.resources.map((u: { name: string }) => u.name).sort(), ["admin", "alice", "bob"]);
    const forbidden = await call(A, "POST", "/v3/users", {
      token: alice,
      body: { username: "eve", password: "x" },
    });
    t.equal(forbidden.status, 403);
    t.equal(forbidden.body.errors[0].code, "KILN_CC_FORBIDDEN");
    t.equal((await call(A, "GET", "/v3/users", { token: bob })).status, 403);
    const mine = await call(A, "GET", "/v3/spaces", { token: alice });
    t.same(
      mine.body.resources.map((s: { guid: string }) => s.guid),
      [sa],
      "alice sees only her space",
    );
    t.equal((await call(A, "GET", "/v3/spaces", { token: admin })).body.pagination.total_results, 2);
    t.equal((await call(A, "GET", `/v3/spaces/${sb}`, { token: alice })).status, 404);
  });

  await t.test("apps: create, names unique per space, another space's app is 404", async (t) => {
    const r = await call(A, "POST", "/v3/apps", {
      token: alice,
      body: {
        name: "web",
        space_guid: sa,
        environment_variables: { GREETING: "hi" },
        lifecycle: { buildpacks: ["node"] },
      },
    });
    t.equal(r.status, 201);
    t.match(r.body, {
      name: "web",
      space_guid: sa,
      state: "STOPPED",
      instances: 1,
      buildpacks: ["node"],
      environment_variables: { GREETING: "hi" },
      version: String,
    });
    aliceApp = r.body.guid;
    const dup = await call(B, "POST", "/v3/apps", { token: alice, body: { name: "web", space_guid: sa } });
    t.equal(dup.status, 422);
    t.equal(dup.body.errors[0].code, "KILN_CC_NAME_TAKEN");
    const other = await call(B, "POST", "/v3/apps", { token: bob, body: { name: "web", space_guid: sb } });
    t.equal(other.status, 201, "the same name in another space is fine");
    bobApp = other.body.guid;
    const intoB = await call(A, "POST", "/v3/apps", { token: alice, body: { name: "x", space_guid: sb } });
    t.equal(intoB.status, 404, "alice cannot create in bob's space");
    // Everything about bob's app is 404 to alice.
    const tries: [string, string, unknown][] = [
      ["GET", `/v3/apps/${bobApp}`, undefined],
      ["PATCH", `/v3/apps/${bobApp}`, { name: "stolen" }],
      ["DELETE", `/v3/apps/${bobApp}`, undefined],
      ["GET", `/v3/apps/${bobApp}/environment_variables`, undefined],
      ["PATCH", `/v3/apps/${bobApp}/environment_variables`, { var: { X: "1" } }],
      ["POST", `/v3/apps/${bobApp}/actions/start`, undefined],
      ["POST", `/v3/apps/${bobApp}/processes/web/actions/scale`, { instances: 9 }],
    ];
    for (const [method, path, body] of tries) {
      const res = await call(A, method, path, { token: alice, body });
      t.equal(res.status, 404, `${method} ${path}`);
      t.equal(res.body.errors[0].code, "KILN_CC_NOT_FOUND");
    }
    const list = await call(A, "GET", "/v3/apps", { token: alice });
    t.same(
      list.body.resources.map((x: { guid: string }) => x.guid),
      [aliceApp],
    );
    const byName = await call(B, "GET", "/v3/apps?names=web", { token: admin });
    t.equal(byName.body.pagination.total_results, 2, "admin sees both");
    const bobStill = await call(B, "GET", `/v3/apps/${bobApp}`, { token: bob });
    t.equal(bobStill.body.name, "web");
    t.equal(bobStill.body.instances, 1);
  });

  await t.test("app fields, version rules, start/stop/scale", async (t) => {
    const v0 = (await call(A, "GET", `/v3/apps/${aliceApp}`, { token: alice })).body.version;
    const renamed = await call(A, "PATCH", `/v3/apps/${aliceApp}`, { token: alice, body: { name: "site" } });
    t.equal(renamed.status, 200);
    t.equal(renamed.body.version, v0, "a rename leaves the version");
    const checked = await call(A, "PATCH", `/v3/apps/${aliceApp}`, {
      token: alice,
      body: { name: "site", health_check: { type: "http", endpoint: "/health", timeout: 30 } },
    });
    t.match(checked.body, { name: "site", health_check: { type: "http", endpoint: "/health", timeout: 30 } });
    t.not(checked.body.version, v0, "a new health check is a new version: instances run with it");
    const again = await call(A, "PATCH", `/v3/apps/${aliceApp}`, {
      token: alice,
      body: { name: "site", health_check: { type: "http", endpoint: "/health", timeout: 30 } },
    });
    t.equal(again.body.version, checked.body.version, "the same values again change nothing");
    t.equal(again.body.updated_at, checked.body.updated_at);
    // The old name is free again, the new one taken.
    const reuse = await call(A, "POST", "/v3/apps", { token: alice, body: { name: "web", space_guid: sa } });
    t.equal(reuse.status, 201);
    const clash = await call(A, "PATCH", `/v3/apps/${reuse.body.guid}`, {
      token: alice,
      body: { name: "site" },
    });
    t.equal(clash.body.errors?.[0].code, "KILN_CC_NAME_TAKEN");
    t.equal((await call(A, "DELETE", `/v3/apps/${reuse.body.guid}`, { token: alice })).status, 204);
    const cmd = await call(B, "PATCH", `/v3/apps/${aliceApp}`, {
      token: alice,
      body: { command: "node server.js" },
    });
    t.not(cmd.body.version, v0, "a new command is a new version");
    const v1 = cmd.body.version;
    const env = await call(A, "PATCH", `/v3/apps/${aliceApp}/environment_variables`, {
      token: alice,
      body: { var: { A: "1", GREETING: null } },
    });
    t.same(env.body, { var: { A: "1" } });
    const v2 = (await call(A, "GET", `/v3/apps/${aliceApp}`, { token: alice })).body.version;
    t.not(v2, v1, "new env is a new version");
    const same = await call(A, "PATCH", `/v3/apps/${aliceApp}/environment_variables`, {
      token: alice,
      body: { var: { A: "1" } },
    });
    t.equal(same.status, 200);
    t.equal(
      (await call(A, "GET", `/v3/apps/${aliceApp}`, { token: alice })).body.version,
      v2,
      "no change, no version",
    );
    const scaled = await call(B, "POST", `/v3/apps/${aliceApp}/processes/web/actions/scale`, {
      token: alice,
      body: { instances: 3 },
    });
    t.equal(scaled.status, 202);
    t.equal(scaled.body.instances, 3);
    t.equal(scaled.body.version, v2, "more instances of the same thing keep the version");
    const mem = await call(A, "POST", `/v3/apps/${aliceApp}/processes/web/actions/scale`, {
      token: alice,
      body: { memory_in_mb: 512 },
    });
    t.equal(mem.body.memory_in_mb, 512);
    t.not(mem.body.version, v2, "new memory is a new version");
    const started = await call(A, "POST", `/v3/apps/${aliceApp}/actions/start`, { token: alice });
    t.equal(started.status, 200);
    t.equal(started.body.state, "STARTED");
    t.equal(started.body.version, mem.body.version, "start keeps the version");
    const restarted = await call(B, "POST", `/v3/apps/${aliceApp}/actions/restart`, { token: alice });
    t.equal(restarted.body.state, "STARTED");
    t.not(restarted.body.version, mem.body.version, "restart replaces the instances");
    const stopped = await call(A, "POST", `/v3/apps/${aliceApp}/actions/stop`, { token: alice });
    t.equal(stopped.body.state, "STOPPED");
    const badScale = await call(A, "POST", `/v3/apps/${aliceApp}/processes/web/actions/scale`, {
      token: alice,
      body: { instances: -1 },
    });
    t.equal(badScale.status, 422);
    t.match(badScale.body.errors[0].detail, /instances/);
  });

  await t.test("bad bodies and unknown things", async (t) => {
    const notJson = await call(A, "POST", "/v3/apps", { token: alice, raw: "{not json" });
    t.equal(notJson.status, 422);
    t.equal(notJson.body.errors[0].code, "KILN_CC_INVALID");
    const array = await call(A, "POST", "/v3/apps", { token: alice, raw: "[1,2]" });
    t.equal(array.status, 422);
    const missing = await call(A, "POST", "/v3/apps", { token: alice, body: { space_guid: sa } });
    t.equal(missing.status, 422);
    t.match(missing.body.errors[0].detail, /^name /, "the detail names the field");
    const missingSpace = await call(A, "POST", "/v3/apps", { token: alice, body: { name: "n" } });
    t.match(missingSpace.body.errors[0].detail, /^space_guid /);
    const badEnv = await call(A, "PATCH", `/v3/apps/${aliceApp}/environment_variables`, {
      token: alice,
      body: { var: { K: 5 } },
    });
    t.match(badEnv.body.errors[0].detail, /var\.K/);
    const big = await call(A, "POST", "/v3/apps", {
      token: alice,
      raw: JSON.stringify({ name: "big", space_guid: sa, pad: "x".repeat(2 * 1024 * 1024) }),
    });
    t.equal(big.status, 413);
    t.equal(big.body.errors[0].code, "KILN_CC_BODY_TOO_LARGE");
    const unknown = await call(A, "GET", "/v3/apps/00000000-0000-4000-8000-000000000000", { token: alice });
    t.equal(unknown.status, 404);
    t.match(unknown.body.errors[0], { code: "KILN_CC_NOT_FOUND", title: "NotFound", detail: String });
    t.equal((await call(A, "GET", "/v3/routes/nope", { token: alice })).status, 404);
    t.equal((await call(A, "GET", "/v3/nothing-here", { token: alice })).status, 404);
    t.equal((await call(A, "PUT", "/v3/apps", { token: alice })).status, 404);
    const perPage = await call(A, "GET", "/v3/apps?per_page=0", { token: alice });
    t.equal(perPage.status, 422);
    t.match(perPage.body.errors[0].detail, /per_page/);
  });

  await t.test("routes: a host held by another space is taken; map and unmap", async (t) => {
    const bobs = await call(B, "POST", "/v3/routes", { token: bob, body: { host: "shop", space_guid: sb } });
    t.equal(bobs.status, 201);
    t.match(bobs.body, { host: "shop", path: "", url: "shop.localhost", space_guid: sb, destinations: [] });
    const taken = await call(A, "POST", "/v3/routes", {
      token: alice,
      body: { host: "shop", space_guid: sa },
    });
    t.equal(taken.status, 422);
    t.equal(taken.body.errors[0].code, "KILN_CC_ROUTE_TAKEN");
    const withPath = await call(A, "POST", "/v3/routes", {
      token: alice,
      body: { host: "shop", path: "/alice", space_guid: sa },
    });
    t.equal(withPath.status, 201, "another path of the host is another route");
    t.equal(withPath.body.url, "shop.localhost/alice");
    const badPath = await call(A, "POST", "/v3/routes", {
      token: alice,
      body: { host: "shop", path: "/a/../b", space_guid: sa },
    });
    t.match(badPath.body.errors?.[0].detail, /^path /);
    const badHost = await call(A, "POST", "/v3/routes", {
      token: alice,
      body: { host: "a.b", space_guid: sa },
    });
    t.match(badHost.body.errors?.[0].detail, /^host /);
    const route = await call(A, "POST", "/v3/routes", {
      token: alice,
      body: { host: "alice", space_guid: sa },
    });
    t.equal(route.status, 201);
    const rg = route.body.guid;
    const stealBobs = await call(A, "POST", `/v3/routes/${rg}/destinations`, {
      token: alice,
      body: { destinations: [{ app: { guid: bobApp } }] },
    });
    t.equal(stealBobs.status, 404, "bob's app cannot be mapped by alice");
    t.equal((await call(A, "DELETE", `/v3/routes/${bobs.body.guid}`, { token: alice })).status, 404);
    const mapped = await call(B, "POST", `/v3/routes/${rg}/destinations`, {
      token: alice,
      body: { destinations: [{ app: { guid: aliceApp } }] },
    });
    t.equal(mapped.status, 200);
    t.same(mapped.body.destinations, [{ app_guid: aliceApp }]);
    const byApp = await call(A, "GET", `/v3/routes?app_guids=${aliceApp}`, { token: alice });
    t.same(
      byApp.body.resources.map((r: { guid: string }) => r.guid),
      [rg],
    );
    const bobSees = await call(B, "GET", "/v3/routes", { token: bob });
    t.same(
      bobSees.body.resources.map((r: { host: string }) => r.host),
      ["shop"],
    );
    t.equal(
      (await call(A, "DELETE", `/v3/routes/${rg}/destinations/${aliceApp}`, { token: alice })).status,
      204,
    );
    t.same((await call(A, "GET", `/v3/routes/${rg}`, { token: alice })).body.destinations, []);
    t.equal((await call(A, "DELETE", `/v3/routes/${rg}`, { token: alice })).status, 204);
    const again = await call(B, "POST", "/v3/routes", {
      token: bob,
      body: { host: "alice", space_guid: sb },
    });
    t.equal(again.status, 201, "a deleted route's host is free");
  });

  await t.test("two spaces race for one host: exactly one gets it", async (t) => {
    for (let round = 0; round < 5; round++) {
      const host = `race${round}`;
      const [x, y] = await Promise.all([
        call(A, "POST", "/v3/routes", { token: alice, body: { host, space_guid: sa } }),
        call(B, "POST", "/v3/routes", { token: bob, body: { host, space_guid: sb } }),
      ]);
      t.same([x.status, y.status].sort(), [201, 422], `round ${round}`);
      t.equal((x.status === 422 ? x : y).body.errors[0].code, "KILN_CC_ROUTE_TAKEN");
    }
    const [x, y] = await Promise.all([
      call(A, "POST", "/v3/apps", { token: alice, body: { name: "twin", space_guid: sa } }),
      call(B, "POST", "/v3/apps", { token: alice, body: { name: "twin", space_guid: sa } }),
    ]);
    t.same([x.status, y.status].sort(), [201, 422], "one of two concurrent app creates wins the name");
  });

  await t.test("two controllers, one state: 50 concurrent writes split across both", async (t) => {
    const made = await call(A, "POST", "/v3/apps", { token: alice, body: { name: "busy", space_guid: sa } });
    const guid = made.body.guid;
    t.equal(
      (await call(B, "GET", `/v3/apps/${guid}`, { token: alice })).body.name,
      "busy",
      "read through the other",
    );
    const sets = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call(i % 2 === 0 ? A : B, "PATCH", `/v3/apps/${guid}/environment_variables`, {
          token: alice,
          body: { var: { [`K${i}`]: `v${i}` } },
        }),
      ),
    );
    t.ok(
      sets.every((s) => s.status === 200),
      "every env write answered 200",
    );
    const env = await call(B, "GET", `/v3/apps/${guid}/environment_variables`, { token: alice });
    t.equal(Object.keys(env.body.var).length, 50, "all 50 keys are there");
    for (let i = 0; i < 50; i++) if (env.body.var[`K${i}`] !== `v${i}`) t.fail(`K${i} missing`);
    const scales = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call(i % 2 === 0 ? B : A, "POST", `/v3/apps/${guid}/processes/web/actions/scale`, {
          token: alice,
          body: { instances: i + 2 },
        }),
      ),
    );
    t.ok(
      scales.every((s) => s.status === 202),
      "every scale answered 202",
    );
    const events = await call(
      A,
      "GET",
      `/v3/audit_events?target_guids=${guid}&types=app.scale&per_page=5000`,
      { token: alice },
    );
    t.equal(events.body.pagination.total_results, 50, "every scale is on record");
    const final = (await call(B, "GET", `/v3/apps/${guid}`, { token: alice })).body.instances;
    t.ok(final >= 2 && final <= 51, `the final value ${final} is one that was sent`);
    await call(A, "POST", `/v3/apps/${guid}/processes/web/actions/scale`, {
      token: alice,
      body: { instances: 7 },
    });
    t.equal(
      (await call(B, "GET", `/v3/apps/${guid}`, { token: alice })).body.instances,
      7,
      "a later write is the last value",
    );
  });

  await t.test("audit events and pagination", async (t) => {
    const mine = await call(A, "GET", `/v3/audit_events?target_guids=${aliceApp}`, { token: alice });
    const types = mine.body.resources.map((e: { type: string }) => e.type);
    t.equal(types[0], "app.create", "oldest first");
    for (const ty of ["app.update", "app.scale", "app.start", "app.stop", "app.restart"])
      t.ok(types.includes(ty), ty);
    t.match(mine.body.resources[0], {
      actor: "alice",
      target_name: "web",
      space_guid: sa,
      created_at: String,
    });
    const bobsFromAlice = await call(A, "GET", `/v3/audit_events?target_guids=${bobApp}`, { token: alice });
    t.equal(bobsFromAlice.body.pagination.total_results, 0, "alice does not see bob's events");
    const logins = await call(B, "GET", "/v3/audit_events?types=user.login", { token: admin });
    t.ok(logins.body.pagination.total_results >= 3);
    const kinds = await call(B, "GET", "/v3/audit_events?per_page=5000", { token: admin });
    const all = new Set(kinds.body.resources.map((e: { type: string }) => e.type));
    for (const ty of [
      "user.create",
      "space.create",
      "space.member_add",
      "app.delete",
      "route.create",
      "route.delete",
      "route.map",
      "route.unmap",
    ])
      t.ok(all.has(ty), ty);
    const page1 = await call(A, "GET", "/v3/apps?per_page=1", { token: alice });
    t.ok(page1.body.pagination.total_results >= 2);
    t.equal(page1.body.resources.length, 1);
    const next = await fetch(page1.body.pagination.next.href, {
      headers: { authorization: `Bearer ${alice}` },
    });
    const page2 = (await next.json()) as { resources: { guid: string }[] };
    t.equal(page2.resources.length, 1);
    t.not(page2.resources[0]?.guid, page1.body.resources[0].guid);
  });

  await t.test("delete an app: its routes are unmapped, it is gone", async (t) => {
    const route = await call(A, "POST", "/v3/routes", {
      token: alice,
      body: { host: "gone", space_guid: sa },
    });
    await call(A, "POST", `/v3/routes/${route.body.guid}/destinations`, {
      token: alice,
      body: { destinations: [{ app: { guid: aliceApp } }] },
    });
    t.equal((await call(B, "DELETE", `/v3/apps/${aliceApp}`, { token: alice })).status, 204);
    t.equal((await call(A, "GET", `/v3/apps/${aliceApp}`, { token: alice })).status, 404);
    t.same((await call(A, "GET", `/v3/routes/${route.body.guid}`, { token: alice })).body.destinations, []);
  });

  await t.test("hostile Authorization headers are all 401", async (t) => {
    // Tokens that were once good: bob's after his logout, carol's after carol was deleted.
    const bobOld = await login(A, "bob", "bob-pw");
    t.equal((await call(B, "DELETE", "/v3/tokens/current", { token: bobOld })).status, 204);
    await call(A, "POST", "/v3/users", { token: admin, body: { username: "carol", password: "carol-pw" } });
    const carol = await login(A, "carol", "carol-pw");
    t.equal(
      (await call(A, "GET", "/v3/apps", { token: carol })).status,
      200,
      "carol's token works while she exists",
    );
    const bus = await nats.connect("admin");
    const kv = await bus.nc.jetstream().views.kv(KV_USERS);
    await kv.delete("user.carol");
    // carol made again: her old token still names the old carol.
    await call(A, "POST", "/v3/users", { token: admin, body: { username: "carol", password: "carol-pw2" } });
    const cases: [string, Record<string, string>][] = [
      ["no header", {}],
      ["empty header", { authorization: "" }],
      ["Bearer alone", { authorization: "Bearer" }],
      ["Bearer and a space", { authorization: "Bearer " }],
      ["Bearer garbage", { authorization: "Bearer garbage" }],
      ["Bearer of random 32 bytes", { authorization: `Bearer ${randomBytes(32).toString("base64url")}` }],
      ["Basic credentials", { authorization: `Basic ${Buffer.from("admin:x").toString("base64")}` }],
      ["the token without Bearer", { authorization: alice }],
      ["two tokens", { authorization: `Bearer ${alice} ${alice}` }],
      [
        "the token with a character changed",
        { authorization: `Bearer ${alice.slice(0, -1)}${alice.endsWith("A") ? "B" : "A"}` },
      ],
      ["the token's hash", { authorization: `Bearer ${"0".repeat(64)}` }],
      ["someone else's revoked token", { authorization: `Bearer ${bobOld}` }],
      ["a token for a deleted user", { authorization: `Bearer ${carol}` }],
    ];
    for (const [name, headers] of cases) {
      for (const base of [A, B]) {
        const r = await call(base, "GET", "/v3/apps", { headers });
        t.equal(r.status, 401, name);
        t.equal(r.body?.errors?.[0]?.code, "KILN_CC_UNAUTHENTICATED", name);
      }
    }
    t.equal(
      (await call(A, "GET", "/v3/apps", { token: alice })).status,
      200,
      "alice's own token still works",
    );
  });

  await t.test("logout revokes the token on every controller", async (t) => {
    const tok = await login(B, "alice", "alice-pw");
    t.equal((await call(A, "GET", "/v3/spaces", { token: tok })).status, 200);
    t.equal((await call(A, "DELETE", "/v3/tokens/current", { token: tok })).status, 204);
    t.equal((await call(A, "GET", "/v3/spaces", { token: tok })).status, 401);
    t.equal((await call(B, "GET", "/v3/spaces", { token: tok })).status, 401);
    t.equal(
      (await call(B, "DELETE", "/v3/tokens/current", { token: tok })).status,
      401,
      "a second logout is 401",
    );
  });

  await t.test("an expired token is 401 (KILN_CC_TOKEN_TTL_S=1)", async (t) => {
    const short: CcProc = await startCcProc(t, nats, dataDir, { KILN_CC_TOKEN_TTL_S: "1" });
    const r = await call(short.url, "POST", "/v3/tokens", {
      body: { username: "alice", password: "alice-pw" },
    });
    t.equal(r.status, 201);
    t.ok(Date.parse(r.body.expires_at) - Date.now() <= 1000);
    t.equal((await call(short.url, "GET", "/v3/spaces", { token: r.body.token })).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const late = await call(short.url, "GET", "/v3/spaces", { token: r.body.token });
    t.equal(late.status, 401);
    t.equal((await call(A, "GET", "/v3/spaces", { token: r.body.token })).status, 401, "on the others too");
    t.equal((await short.stop()).code, 0, "stops cleanly on SIGTERM");
  });
});
