// `kiln push` and friends end to end, as a user runs them: one `kiln up` for the file (private
// nats-server, router, Cloud Controller, DEA in runc containers), driven only through the kiln
// binary with a KILN_HOME per user and no terminal, and every app fetched through the router.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t, { type Test } from "tap";
import { Runc } from "../../dea/container/runc.js";
import { kilnBin, projectRoot } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";
import { type Run, startPlatform } from "../helpers/platform.js";
import { freePort } from "../helpers/ports.js";
import { until } from "../helpers/until.js";

guardChildren(t);
// Nine stagings on a busy 2-core machine can outlast tap's 120 s, and a file killed for its
// timeout never reaches the teardown that stops its kernel and containers.
t.setTimeout(300_000);
// A route whose last instance went answers 503 for 30 s by default before it is dropped (as
// gorouter's empty pool); 0 drops it at once, so a deleted app's host answers 404 right after.
const platform = await startPlatform(t, { env: { KILN_ROUTER_EMPTY_POOL_TIMEOUT_MS: "0" } });
const { base, dataDir, ports, api, childEnv, succeeds, failsWith, viaRouter, answer, appView } = platform;
const kernel = platform.kernel();
const runc = new Runc({ root: join(dataDir, "dea", "containers") });

/** What the instance-naming app (below) answers: its CF_INSTANCE_INDEX and CF_INSTANCE_GUID. */
function whoAnswered(body: string): { index: string; guid: string } {
  return JSON.parse(body) as { index: string; guid: string };
}

/** "Uploading K of N files" from a push's notes. */
function uploaded(r: Run): { sent: number; of: number } | null {
  const m = /^Uploading (\d+) of (\d+) files/m.exec(r.stderr);
  return m === null ? null : { sent: Number(m[1]), of: Number(m[2]) };
}

const homes = {
  admin: join(base, "home-admin"),
  alice: join(base, "home-alice"),
  bob: join(base, "home-bob"),
};
const passwords = { alice: randomBytes(12).toString("hex"), bob: randomBytes(12).toString("hex") };

if (platform.deaUnable !== null) {
  await platform.stop();
  t.plan(0, `kiln up left the DEA out, nothing can run apps here: ${platform.deaUnable}`);
} else {
  t.test(
    "the admin logs in with the password kiln up wrote, and sets up two users in two spaces",
    async (t) => {
      const login = await platform.loginAdmin(t, homes.admin);
      t.match(login.stdout, `Logged in to ${api} as admin`);
      // Independent steps run side by side: each kiln run mostly waits on the controller.
      await Promise.all(
        ["examples", "alpha", "beta"].map((space) => succeeds(t, homes.admin, ["create-space", space])),
      );
      const member = async (user: "alice" | "bob", space: string) => {
        await succeeds(t, homes.admin, ["create-user", user, "-p", passwords[user]]);
        await succeeds(t, homes.admin, ["add-member", space, user]);
        // A member of one space is targeted at it on login.
        const r = await succeeds(t, homes[user], ["login", "-a", api, "-u", user, "-p", passwords[user]]);
        t.match(r.stdout, `Targeted space ${space}`);
      };
      await Promise.all([
        succeeds(t, homes.admin, ["target", "-s", "examples"]),
        member("alice", "alpha"),
        member("bob", "beta"),
      ]);
    },
  );

  const examples: { name: string; args: string[]; body: string }[] = [
    { name: "node", args: ["-p", "examples/node"], body: "hello from the node example\n" },
    {
      name: "node-dep",
      args: ["-p", "examples/node-dep"],
      body: "hello from the node-dep example (greeting 1.0.0)\n",
    },
    { name: "python", args: ["-p", "examples/python"], body: "hello from the python example\n" },
    { name: "go", args: ["-p", "examples/go"], body: "hello from the go example\n" },
    {
      name: "custom-buildpack",
      args: [
        "-p",
        "examples/custom-buildpack/app",
        "-b",
        join(projectRoot, "examples/custom-buildpack/buildpack"),
      ],
      body: "hello from the custom-buildpack example\n(built by the custom buildpack)\n",
    },
    // Kept running: the delete case below frees its route.
    {
      name: "static",
      args: ["-p", "examples/static"],
      body: readFileSync(join(projectRoot, "examples/static/index.html"), "utf8"),
    },
  ];

  /** Pushes as `home`'s user and checks what a user sees: exit 0, the URL, the body through the router. */
  async function pushAndFetch(
    t: Test,
    home: string,
    app: string,
    args: string[],
    body: string,
  ): Promise<Run> {
    const r = await succeeds(t, home, ["push", app, ...args]);
    t.match(r.stdout, `${app} is running\n`, `${app}: says it runs`);
    const url = `http://${app}.localhost:${ports.router}`;
    t.equal(r.stdout.trimEnd().split("\n").at(-1), url, `${app}: its URL is the last line`);
    t.equal(await answer(app), body, `${app}: its body through the router`);
    return r;
  }

  t.test("each example pushes, answers through the router, and is deleted", async (t) => {
    // Pushes one after another (staging is the heavy part); each delete runs beside the next push.
    const deletes: Promise<void>[] = [];
    for (const ex of examples) {
      const app = `ex-${ex.name}`;
      await pushAndFetch(t, homes.admin, app, ex.args, ex.body);
      if (ex.name === "static") continue;
      deletes.push(
        succeeds(t, homes.admin, ["delete", app, "-f"]).then((del) => {
          t.equal(del.stdout, `${app}: deleted\n`);
        }),
      );
    }
    await Promise.all(deletes);
    // The procfile example is bob's, in his space: the isolation case needs an app of his.
    await pushAndFetch(
      t,
      homes.bob,
      "bob-web",
      ["-p", "examples/procfile"],
      "hello from the procfile example\n",
    );
  });

  // An app that names the instance answering, in a fresh folder (a nonce in server.js) so its
  // first push has something to upload.
  const idxDir = join(base, "idx");
  mkdirSync(idxDir);
  copyFileSync(join(projectRoot, "examples/node/package.json"), join(idxDir, "package.json"));
  writeFileSync(
    join(idxDir, "server.js"),
    `// Names the instance answering; nonce ${randomBytes(8).toString("hex")}.
const body = JSON.stringify({ index: process.env.CF_INSTANCE_INDEX, guid: process.env.CF_INSTANCE_GUID });
require("node:http").createServer((_q, s) => s.end(body)).listen(Number(process.env.PORT));
`,
  );
  let firstUpload: { sent: number; of: number } | null = null;

  t.test("scale 1 → 3 → 1: the router spreads requests over every running instance", async (t) => {
    const push = await succeeds(t, homes.alice, ["push", "idx", "-p", idxDir]);
    firstUpload = uploaded(push);
    t.ok(firstUpload !== null && firstUpload.sent > 0, "the first push uploads the new files", {
      stderr: push.stderr,
    });
    t.equal(whoAnswered(await answer("idx")).index, "0", "one instance: index 0 answers");

    const up = await succeeds(t, homes.alice, ["scale", "idx", "-i", "3"]);
    t.match(up.stdout, /^idx: 3 instances, /);
    await until("3 RUNNING instances in kiln app idx --json", async () => {
      const v = await appView(homes.alice, "idx");
      const running = v.instances.filter((i) => i.state === "RUNNING").map((i) => i.index);
      return running.sort().join() === "0,1,2" ? running : undefined;
    });
    const seen = new Set<string>();
    await until("indexes 0, 1 and 2 through the router", async () => {
      const r = await viaRouter("idx");
      if (r.status === 200) seen.add(whoAnswered(r.body).index);
      return seen.size === 3 ? seen : undefined;
    });
    t.same([...seen].sort(), ["0", "1", "2"], "three instances answer through the router");

    const down = await succeeds(t, homes.alice, ["scale", "idx", "-i", "1"]);
    t.match(down.stdout, /^idx: 1 instances, /);
    await until("only index 0 in kiln app idx --json", async () => {
      const v = await appView(homes.alice, "idx");
      return v.instances.length === 1 && v.instances[0]?.index === 0 && v.instances[0].state === "RUNNING"
        ? v
        : undefined;
    });
    // The router may still hold a stopping instance for a moment; then only index 0 is left.
    let streak = 0;
    const others: string[] = [];
    await until("20 answers in a row from index 0", async () => {
      const r = await viaRouter("idx");
      const index = r.status === 200 ? whoAnswered(r.body).index : `status ${r.status}`;
      if (index === "0") streak++;
      else {
        streak = 0;
        others.push(index);
      }
      return streak >= 20 ? true : undefined;
    });
    t.pass(`only index 0 answers once scaled back (on the way: ${others.join(", ") || "nothing else"})`);
  });

  t.test("delete -r frees the route: the router answers 404, and another space maps the host", async (t) => {
    const del = await succeeds(t, homes.admin, ["delete", "ex-static", "-f", "-r"]);
    t.equal(del.stdout, "ex-static: deleted\nroute ex-static.localhost: deleted\n");
    const gone = await until("404 for ex-static.localhost", async () => {
      const r = await viaRouter("ex-static");
      return r.status === 404 ? r : undefined;
    });
    t.match(gone.body, /KILN_ROUTER_NO_ROUTE/, "the router's own 404");
    const routes = JSON.parse((await succeeds(t, homes.admin, ["routes", "--json"])).stdout) as {
      host: string;
    }[];
    t.notOk(
      routes.some((r) => r.host === "ex-static"),
      "the examples space holds no ex-static route",
    );
    const map = await succeeds(t, homes.alice, ["map-route", "idx", "ex-static"]);
    t.equal(map.stdout, "idx: mapped ex-static.localhost\n", "alice's app in space alpha takes the host");
  });

  t.test("restart: a new instance answers, on its new route too", async (t) => {
    const before = await appView(homes.alice, "idx");
    const old = whoAnswered(await answer("idx"));
    const r = await succeeds(t, homes.alice, ["restart", "idx"]);
    t.equal(r.stdout, "idx: started\n");
    const after = await until("a RUNNING instance of the new version", async () => {
      const v = await appView(homes.alice, "idx");
      const [only] = v.instances;
      return v.app.version !== before.app.version &&
        v.instances.length === 1 &&
        only?.state === "RUNNING" &&
        only.version === v.app.version
        ? v
        : undefined;
    });
    t.not(after.app.version, before.app.version, "restart gives the app a new version");
    const fresh = await until("the new instance through the router", async () => {
      const res = await viaRouter("idx");
      const who = res.status === 200 ? whoAnswered(res.body) : undefined;
      return who !== undefined && who.guid !== old.guid ? who : undefined;
    });
    t.equal(fresh.index, "0", "index 0, a new instance guid");
    // Route maps reach an app's instances at their next start: this one.
    t.same(whoAnswered(await answer("ex-static")), fresh, "the mapped host reaches the same instance");
  });

  t.test("an unchanged re-push uploads nothing and the app still answers", async (t) => {
    const r = await succeeds(t, homes.alice, ["push", "idx", "-p", idxDir]);
    t.match(r.stderr, /^Updating app idx in space alpha$/m);
    const again = uploaded(r);
    t.equal(again?.sent, 0, "Uploading 0 of N files", { stderr: r.stderr });
    t.equal(again?.of, firstUpload?.of, "N is the folder's file count, as on the first push");
    t.equal(whoAnswered(await answer("idx")).index, "0", "idx answers");
  });

  t.test("another space's user neither sees nor touches alice's app nor takes its route", async (t) => {
    // Each of bob's tries stands alone: they run side by side.
    const [alice, listed] = await Promise.all([
      appView(homes.alice, "idx"),
      succeeds(t, homes.bob, ["apps", "--json"]),
      failsWith(t, homes.bob, ["app", "idx"], "KILN_CLI_NOT_FOUND"),
      failsWith(t, homes.bob, ["scale", "idx", "-i", "2"], "KILN_CLI_NOT_FOUND"),
      failsWith(t, homes.bob, ["delete", "idx", "-f"], "KILN_CLI_NOT_FOUND"),
      failsWith(t, homes.bob, ["target", "-s", "alpha"], "KILN_CLI_NOT_FOUND"),
      failsWith(t, homes.bob, ["map-route", "bob-web", "idx"], "KILN_CC_ROUTE_TAKEN"),
    ]);
    t.same(
      (JSON.parse(listed.stdout) as { name: string }[]).map((a) => a.name),
      ["bob-web"],
      "bob's apps: his own only",
    );
    // Past the CLI, which looks apps up in the targeted space: the controller itself answers
    // another space's app with 404, by its guid too.
    const token = (JSON.parse(readFileSync(join(homes.bob, "config.json"), "utf8")) as { token: string })
      .token;
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const guid = alice.app.guid;
    for (const [method, path, body] of [
      ["GET", `/v3/apps/${guid}`, undefined],
      ["POST", `/v3/apps/${guid}/processes/web/actions/scale`, JSON.stringify({ instances: 2 })],
      ["DELETE", `/v3/apps/${guid}`, undefined],
    ] as const) {
      const res = await fetch(`${api}${path}`, {
        method,
        headers: auth,
        ...(body === undefined ? {} : { body }),
      });
      const json = (await res.json()) as { errors: { code: string }[] };
      t.equal(res.status, 404, `bob's ${method} ${path.replace(guid, "<alice's app>")}: 404`);
      t.equal(json.errors[0]?.code, "KILN_CC_NOT_FOUND");
    }
    const still = await appView(homes.alice, "idx");
    t.equal(still.app.instances, 1, "alice's app keeps its one instance");
    t.equal(whoAnswered(await answer("idx")).index, "0", "and answers");
    t.equal(
      await answer("bob-web"),
      "hello from the procfile example\n",
      "bob's app answers on its own host",
    );
  });

  t.test(
    "an expired token: the controller answers 401, the CLI says so in one line and exits 1",
    async (t) => {
      // A second controller on the kernel's NATS issues short-lived tokens; every controller reads
      // the same token records, so the kernel's own refuses them too once they expire.
      const nats = JSON.parse(readFileSync(join(dataDir, "nats", "credentials.json"), "utf8")) as {
        users: Record<string, string>;
      };
      // Long enough that the token still works right after a login on a loaded machine.
      const ttlS = 4;
      const port = await freePort();
      const cc = spawn(
        process.execPath,
        [
          kilnBin,
          "cc",
          "--nats",
          `nats://127.0.0.1:${ports.nats}`,
          "--port",
          String(port),
          "--data-dir",
          join(base, "cc-short"),
          "--router-port",
          String(ports.router),
          "--token-ttl-s",
          String(ttlS),
        ],
        {
          stdio: ["ignore", "ignore", "pipe"],
          env: { ...childEnv, KILN_NATS_USER: "cc", KILN_NATS_PASS: nats.users.cc ?? "" },
        },
      );
      let ccLog = "";
      cc.stderr.setEncoding("utf8").on("data", (d: string) => {
        ccLog += d;
      });
      const ccExited = new Promise<number | null>((r) => cc.once("exit", (code) => r(code)));
      t.teardown(() => {
        if (cc.exitCode === null && cc.signalCode === null) cc.kill("SIGKILL");
      });
      await until("the second controller listening", async () =>
        ccLog.includes('"event":"cc_listening"') ? true : cc.exitCode === null ? undefined : true,
      );
      t.equal(cc.exitCode, null, "the second controller runs", { log: ccLog.slice(-2000) });

      const home = join(base, "home-alice-short");
      const short = `http://127.0.0.1:${port}`;
      await succeeds(t, home, ["login", "-a", short, "-u", "alice", "-p", passwords.alice]);
      const loggedIn = Date.now();
      const token = (JSON.parse(readFileSync(join(home, "config.json"), "utf8")) as { token: string }).token;
      const spaces = (at: string) =>
        fetch(`${at}/v3/spaces`, { headers: { authorization: `Bearer ${token}` } });
      const fresh = await spaces(api);
      await fresh.text();
      t.equal(fresh.status, 200, "the kernel's controller takes the new token");
      // The token was issued before login returned: it is expired by then.
      await new Promise((r) => setTimeout(r, loggedIn + ttlS * 1000 + 200 - Date.now()));
      const expired = await spaces(short);
      const why = (await expired.json()) as { errors: { code: string; detail: string }[] };
      t.equal(expired.status, 401, "the controller answers 401 once the token expired");
      t.equal(why.errors[0]?.code, "KILN_CC_UNAUTHENTICATED");
      t.match(why.errors[0]?.detail, /expired/);
      const r = await failsWith(t, home, ["apps", "--json"], "KILN_CLI_NOT_LOGGED_IN");
      t.equal(r.stdout, "", "nothing on stdout");
      t.match(r.stderr, /run kiln login/, "the line says what to do");
      const kernelSide = await spaces(api);
      await kernelSide.text();
      t.equal(kernelSide.status, 401, "the kernel's controller refuses it too");

      cc.kill("SIGTERM");
      t.equal(await ccExited, 0, "the second controller exits 0 on SIGTERM");
    },
  );

  t.test("kiln up stops on SIGTERM and leaves no container behind", async (t) => {
    kernel.up.kill("SIGTERM");
    t.equal(await kernel.exited, 0, "kiln up exits 0");
    const left = await runc.list();
    for (const c of left) await runc.delete(c.id);
    t.same(
      left.map((c) => c.id),
      [],
      "no runc container under the DEA's root",
    );
  });
}
