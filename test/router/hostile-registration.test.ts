// A registration whose app, private_instance_id or private_instance_index could break a
// header or a cookie is refused at decode (messaging/gorouter.ts) and counted: a real router
// never adds its endpoint, so nothing of it reaches X-CF-* or `Set-Cookie: __VCAP_ID__=`.
import t from "tap";
import { guardChildren } from "../helpers/children.js";
import { send, startBackend, startRig, statusGet } from "./harness.js";

guardChildren(t);

const rig = await startRig(t, ["--threads", "1"]);
const port = rig.router.port;

// The app sets a session cookie, so the router answers with __VCAP_ID__=<private_instance_id>.
const app = await startBackend(t, (req, res) => {
  res.setHeader("Set-Cookie", "JSESSIONID=s1; Path=/");
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ headers: req.headers }));
});

async function badMessages(): Promise<number> {
  const m = /^kiln_router_registry_bad_messages_total (\d+)$/m.exec(
    (await statusGet(rig.router.statusPort, "/metrics")).body,
  );
  return Number(m?.[1] ?? -1);
}

t.test("a hostile private_instance_id, app or index never becomes an endpoint", async (t) => {
  const hostile: Record<string, string>[] = [
    { private_instance_id: "evil\r\nSet-Cookie: stolen=1" },
    { private_instance_id: "evil; Domain=example.com" },
    { private_instance_id: "evil\u0000" },
    { app: "app\r\nX-Injected: 1" },
    { app: 'app"quoted' },
    { private_instance_index: "0\r\nX-Injected: 1" },
    { private_instance_index: "zero" },
  ];
  const before = await badMessages();
  for (const fields of hostile) {
    rig.bus.publish(
      "router.register",
      new TextEncoder().encode(
        JSON.stringify({
          host: "127.0.0.1",
          port: app.port,
          uris: ["hostile.test"],
          app: "app-1",
          private_instance_id: "good-0",
          private_instance_index: "0",
          ...fields,
        }),
      ),
    );
  }
  // Published after the hostile ones on the same connection: once it is in, they were seen.
  await rig.register({
    port: app.port,
    uris: ["hostile.test"],
    app: "app-1",
    private_instance_id: "good-0",
    private_instance_index: "0",
  });
  const dump = JSON.parse((await statusGet(rig.router.statusPort, "/routes")).body) as {
    route: string;
    endpoints: { instanceId: string; app: string; instanceIndex: string }[];
  }[];
  const route = dump.find((d) => d.route === "hostile.test");
  t.same(
    route?.endpoints.map((e) => [e.instanceId, e.app, e.instanceIndex]),
    [["good-0", "app-1", "0"]],
    "only the well-formed registration is in the table",
  );
  t.equal((await badMessages()) - before, hostile.length, "every hostile registration was counted");
  const logged = rig.router.logs.find(
    (l) => l.event === "bad_message" && l.code === "KILN_MSG_BAD_HEADER_VALUE",
  );
  t.ok(logged, "the refusal is logged with its code");

  const r = await send(port, { host: "hostile.test", path: "/" });
  t.equal(r.status, 200);
  t.same(r.headers["set-cookie"], ["JSESSIONID=s1; Path=/", "__VCAP_ID__=good-0; Path=/"]);
  const seen = JSON.parse(r.body) as { headers: Record<string, string> };
  t.equal(seen.headers["x-cf-instanceid"], "good-0");
  t.equal(seen.headers["x-cf-applicationid"], "app-1");
  t.equal(seen.headers["x-cf-instanceindex"], "0");
  t.notOk("x-injected" in seen.headers);
});
