// `kiln up` end to end: the kernel's router learns a route from NATS (published with the
// DEA's credentials from the data dir, as examples/route-registrar.mjs does) and proxies to it.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import t from "tap";
import { encodeRegistryMessage } from "../../messaging/gorouter.js";
import { ROUTER_REGISTER } from "../../messaging/subjects.js";
import { descendants, guardChildren } from "../helpers/children.js";
import { health, startUp } from "../helpers/kernel.js";
import { accepts, freePort, otherAddress } from "../helpers/ports.js";

guardChildren(t);

/** The status of GET `path` on the status port, with basic auth when `creds` are given. */
async function statusOf(port: number, path: string, creds?: { user: string; password: string }) {
  const headers: Record<string, string> =
    creds === undefined
      ? {}
      : { authorization: `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString("base64")}` };
  return (await fetch(`http://127.0.0.1:${port}${path}`, { headers })).status;
}

/** The router status credentials `kiln up` keeps in `dataDir`, and the file's mode. */
function statusCredentials(dataDir: string) {
  const path = join(dataDir, "router", "status-credentials.json");
  const creds = JSON.parse(readFileSync(path, "utf8")) as { user: string; password: string };
  return { creds, mode: statSync(path).mode & 0o777 };
}

t.test("kiln up routes a registered app and stops cleanly", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-up-"));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const natsPort = await freePort();
  const routerPort = await freePort();
  const statusPort = await freePort();
  const backend = createServer((_req, res) => res.end("hello from app\n"));
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => backend.close(() => r())));
  const appPort = (backend.address() as { port: number }).port;
  const { up, exited, until, stderr } = await startUp(t, dataDir, {
    nats: natsPort,
    router: routerPort,
    status: statusPort,
  });
  // The DEA joins the kernel (or, where runc cannot run, is left out with the reason).
  await until("its DEA started or left out", () => /"event":"(dea_started|dea_not_started)"/.test(stderr()));
  // So does the Cloud Controller, with its first admin's password in the data dir.
  await until("its Cloud Controller listening", () => stderr().includes('"event":"cc_listening"'));
  const admin = join(dataDir, "admin-credentials.json");
  t.equal(statSync(admin).mode & 0o777, 0o600, "admin-credentials.json is mode 0600");
  const ccPort = Number(/"event":"cc_listening"[^\n]*"port":(\d+)/.exec(stderr())?.[1]);
  const info = await fetch(`http://127.0.0.1:${ccPort}/v3/info`);
  t.equal(info.status, 200, "the API answers");
  await info.text();

  const creds = JSON.parse(readFileSync(join(dataDir, "nats", "credentials.json"), "utf8")) as {
    users: Record<string, string>;
  };
  const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}`, user: "dea", pass: creds.users.dea });
  t.teardown(() => nc.close());
  nc.publish(
    ROUTER_REGISTER,
    encodeRegistryMessage({
      host: "127.0.0.1",
      port: appPort,
      uris: ["myapp.localhost"],
      privateInstanceId: "i-1",
    }),
  );
  await nc.flush();

  // fetch() would replace the Host header; node:http sends the one given.
  const get = () =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: routerPort, path: "/", headers: { host: "myapp.localhost" } },
        (res) => {
          let b = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            b += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: b }));
        },
      );
      req.on("error", reject);
      req.end();
    });
  let body = "";
  await until("the app answers through the router", async () => {
    const res = await get();
    body = res.body;
    return res.status === 200;
  });
  t.equal(body, "hello from app\n");

  // The status port is on loopback, but kiln up gave its router the data dir's credentials.
  const status = statusCredentials(dataDir).creds;
  t.equal(await statusOf(statusPort, "/routes"), 401, "/routes without the status credentials: 401");
  t.equal(await statusOf(statusPort, "/routes", status), 200, "/routes with them: 200");

  // NATS dies: the kernel brings it back on the same port, and the router keeps its routes
  // and reconnects.
  const natsProc = descendants(up.pid).find((p) => p.command.includes("nats-server"));
  t.ok(natsProc, "the kernel runs a nats-server");
  process.kill((natsProc as { pid: number }).pid, "SIGKILL");
  t.equal((await get()).status, 200, "the router serves its table while NATS is down");
  await until("a new nats-server", () =>
    descendants(up.pid).some((p) => p.command.includes("nats-server") && p.pid !== natsProc?.pid),
  );
  const again = await connect({
    servers: `nats://127.0.0.1:${natsPort}`,
    user: "dea",
    pass: creds.users.dea,
    waitOnFirstConnect: true,
  });
  t.teardown(() => again.close());
  // Like a registrar, announce until the router (reconnecting on its own schedule) takes it.
  const second = encodeRegistryMessage({
    host: "127.0.0.1",
    port: appPort,
    uris: ["second.localhost"],
    privateInstanceId: "i-2",
  });
  await until("a route registered after the restart answers", async () => {
    again.publish(ROUTER_REGISTER, second);
    await again.flush();
    const res = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: routerPort, path: "/", headers: { host: "second.localhost" } },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    return res === 200;
  });
  t.equal((await get()).status, 200, "the first route is still served");

  const children = descendants(up.pid).filter((p) => / (router|dea|cc) /.test(p.command));
  t.equal(children.length >= 2, true, "the kernel runs its components");
  up.kill("SIGTERM");
  t.equal(await exited, 0, "kiln up exits 0 on SIGTERM");
  const left = children.filter((c) => {
    try {
      process.kill(c.pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  t.same(left, [], "no component outlives kiln up");
});

t.test(
  "a kernel killed with SIGKILL takes its router and nats-server with it; the next one starts on the same ports",
  async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), "kiln-up-"));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const ports = { nats: await freePort(), router: await freePort(), status: await freePort() };
    // The status host reaches the router from kiln up's environment here, from its flag below.
    const first = await startUp(t, dataDir, ports, { env: { KILN_ROUTER_STATUS_HOST: "0.0.0.0" } });
    const other = otherAddress();
    if (other === undefined) t.pass("status host passed on", { skip: "no non-loopback IPv4 address here" });
    else t.ok(await accepts(other, ports.status), `KILN_ROUTER_STATUS_HOST=0.0.0.0: status port on ${other}`);
    const before = statusCredentials(dataDir);
    t.equal(before.mode, 0o600, "the status credentials file is mode 0600");
    t.equal(await statusOf(ports.status, "/metrics", before.creds), 200, "its credentials open /metrics");
    const router = descendants(first.up.pid).find((p) => p.command.includes(" router "));
    t.ok(router, "the kernel runs a router");
    const routerPid = (router as { pid: number }).pid;
    const natsPid = descendants(first.up.pid).find((p) => p.command.includes("nats-server"))?.pid ?? -1;
    t.ok(natsPid > 0, "the kernel runs a nats-server");
    await first.until("its DEA started or left out", () =>
      /"event":"(dea_started|dea_not_started)"/.test(first.stderr()),
    );
    const deaPid = descendants(first.up.pid).find((p) => p.command.includes(" dea "))?.pid ?? -1;
    await first.until("its Cloud Controller listening", () =>
      first.stderr().includes('"event":"cc_listening"'),
    );
    const ccPid = descendants(first.up.pid).find((p) => p.command.includes(" cc "))?.pid ?? -1;
    t.ok(ccPid > 0, "the kernel runs a Cloud Controller");
    // Once their kernel is gone they are nobody's children: stop them here should they outlive this test.
    t.teardown(() => {
      for (const pid of [routerPid, natsPid, deaPid, ccPid]) {
        if (pid <= 0) continue;
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    });
    first.up.kill("SIGKILL");
    await first.exited;
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const end = Date.now() + 5000;
    while (
      (alive(routerPid) || alive(natsPid) || alive(ccPid) || (deaPid > 0 && alive(deaPid))) &&
      Date.now() < end
    )
      await new Promise((r) => setTimeout(r, 50));
    t.notOk(alive(routerPid), "the router stopped once its kernel was gone");
    if (deaPid > 0) t.notOk(alive(deaPid), "the DEA stopped once its kernel was gone");
    t.notOk(alive(ccPid), "the Cloud Controller stopped once its kernel was gone");
    t.equal(await health(ports.status), 0, "nothing answers on the status port");
    // setpriv --pdeathsig (messaging/nats-server.ts); without setpriv the next kernel stops
    // the server it finds through the pid file instead.
    if (existsSync("/usr/bin/setpriv") || existsSync("/bin/setpriv"))
      t.notOk(alive(natsPid), "the nats-server stopped once its kernel was gone");

    const second = await startUp(t, dataDir, ports, { args: ["--router-status-host", "0.0.0.0"] });
    if (other !== undefined)
      t.ok(await accepts(other, ports.status), `--router-status-host 0.0.0.0: status port on ${other}`);
    t.same(statusCredentials(dataDir), before, "the next kernel keeps the same credentials, mode 0600");
    t.equal(await statusOf(ports.status, "/metrics", before.creds), 200, "and its router takes them");
    t.equal(await health(ports.status), 200, "the next kernel's router serves /health");
    second.up.kill("SIGTERM");
    t.equal(await second.exited, 0, "and stops cleanly");
    t.notMatch(second.stderr(), /KILN_ROUTER_LISTEN_FAILED/, "its router never found its ports taken");
  },
);
