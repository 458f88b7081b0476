// The reference proxies hand the bench backend the request Kiln hands it: the real nginx and
// HAProxy, started with the bench's own configs, in front of the real bench backend, which
// answers the header names it received. Runs where nginx or HAProxy is installed (the
// router bench installs both; `node dist/bench/router.js --setup-only` does it alone).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { headersPath, startBackend } from "../../bench/lib/backend.js";
import { which } from "../../bench/lib/debian.js";
import { httpGet, stopAll } from "../../bench/lib/procs.js";
import {
  addedHeaderNames,
  forwardedHeaderNames,
  type ReferenceHeaders,
} from "../../bench/lib/targets/forwarded.js";
import { startHaproxy } from "../../bench/lib/targets/haproxy.js";
import { startNginx } from "../../bench/lib/targets/nginx.js";
import { makeRouteSet, type Target } from "../../bench/lib/targets/types.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

t.test("added header names: case-folded, deduplicated, sorted, probe and framing left out", async (t) => {
  t.same(
    addedHeaderNames(
      ["Host", "X-Forwarded-For", "connection", "traceparent", "x-forwarded-for", "Content-Length", "Accept"],
      ["host", "accept"],
    ),
    ["traceparent", "x-forwarded-for"],
  );
  t.same(addedHeaderNames([], ["host"]), []);
});

const tmp = mkdtempSync(join(tmpdir(), "kiln-forwarded-"));
t.teardown(async () => {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
});

const routes = makeRouteSet(10, 2);

async function seenBy(target: Target): Promise<string[]> {
  const single = target.endpoint("tiny");
  const table = target.endpoint("routes100k");
  if (single === undefined || table === undefined) throw new Error("no endpoint");
  const out: string[] = [];
  for (const ep of [single, table]) {
    const r = await httpGet(ep.port, headersPath, ep.hosts[0] ?? "localhost");
    if (r.status !== 200) throw new Error(`status ${r.status}`);
    out.push(addedHeaderNames(JSON.parse(r.body) as string[], ["host", "connection"]).join(","));
  }
  // Both frontends (single route and the host map) add the same set.
  if (out[0] !== out[1]) throw new Error(`frontends differ: ${out[0]} / ${out[1]}`);
  return (out[0] as string).split(",").filter((s) => s !== "");
}

const kiln = [...forwardedHeaderNames].sort();
const proxies = [
  { name: "nginx", bin: which("nginx") },
  { name: "haproxy", bin: which("haproxy") },
] as const;

for (const p of proxies) {
  t.test(
    `${p.name} adds Kiln's request headers, or none`,
    { skip: p.bin === undefined && `${p.name} is not installed` },
    async (t) => {
      const backend = await startBackend();
      for (const headers of ["kiln", "none"] as ReferenceHeaders[]) {
        const dir = join(tmp, `${p.name}-${headers}`);
        const common = {
          bin: p.bin as string,
          version: "test",
          backendPort: backend.port,
          routes,
          dir,
          headers,
        };
        const target =
          p.name === "nginx"
            ? await startNginx({ ...common, workers: 1 })
            : await startHaproxy({ ...common, threads: 1 });
        t.same(await seenBy(target), headers === "kiln" ? kiln : [], `--reference-headers ${headers}`);
        await target.stop();
      }
      backend.proc.child.kill("SIGTERM");
      await backend.proc.exited;
    },
  );
}
