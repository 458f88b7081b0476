// A signed-in API client for tests that push and run apps through a real `kiln cc`: the node
// example's files, package upload, instance stats polled until N run, and one call that takes
// an app from nothing to RUNNING (package, upload, build, start).
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../../kernel/paths.js";
import { file, type RawEntry, tarball } from "../helpers/tarball.js";
import { until as waitUntil } from "../helpers/until.js";
import { type Answer, call, type InstanceStat } from "./harness.js";

export type Stat = InstanceStat;

const sha1 = (b: Buffer) => createHash("sha1").update(b).digest("hex");
const exampleDir = join(projectRoot, "examples/node");
/** The node example's files, as resource matching sees them. */
export const files = ["package.json", "server.js"].map((name) => {
  const body = readFileSync(join(exampleDir, name));
  return { path: name, body, sha1: sha1(body), mode: statSync(join(exampleDir, name)).mode & 0o777 };
});
export const resourcesJson = (list: { path: string; sha1: string; mode: number }[]): RawEntry =>
  file(".kiln-resources.json", JSON.stringify(list));
export const appFiles = files.map((f) => file(f.path, f.body, f.mode));
/** What the node example answers. */
export const HELLO = "hello from the node example\n";

export const until = <T>(
  what: string,
  f: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 60_000,
) => waitUntil(what, f, ms, 100);

export function pushClient(url: string, token: string) {
  const api = (method: string, path: string, body?: unknown) => call(url, method, path, { token, body });

  async function upload(pkg: string, body: Buffer): Promise<Answer> {
    const res = await fetch(`${url}/v3/packages/${pkg}/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/gzip" },
      body,
    });
    return { status: res.status, body: (await res.json()) as Answer["body"] };
  }

  async function newPackage(app: string): Promise<string> {
    const r = await api("POST", "/v3/packages", {
      type: "bits",
      relationships: { app: { data: { guid: app } } },
    });
    if (r.status !== 201) throw new Error(`package: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.guid as string;
  }

  /** The app's instances once exactly `n` are reported and all RUNNING with a port (at `version`). */
  async function running(app: string, n: number, version?: string, ms = 60_000): Promise<Stat[]> {
    return until(
      `${n} running`,
      async () => {
        const r = await api("GET", `/v3/apps/${app}/processes/web/stats`);
        const up = (r.body.resources as Stat[]).filter(
          (i) => i.state === "RUNNING" && i.port > 0 && (version === undefined || i.version === version),
        );
        return r.body.resources.length === n && up.length === n ? up : null;
      },
      ms,
    );
  }

  /** What each instance answers on its host and port, by index. */
  async function answers(instances: Stat[]): Promise<Record<number, string>> {
    const out: Record<number, string> = {};
    for (const i of instances) out[i.index] = await (await fetch(`http://${i.host}:${i.port}/`)).text();
    return out;
  }

  /** Creates the node example as `name` in `space`, uploads, stages and starts it; its guid once `instances` run. */
  async function pushNode(space: string, name: string, instances = 1): Promise<string> {
    const app = (await api("POST", "/v3/apps", { name, space_guid: space })).body.guid as string;
    const pkg = await newPackage(app);
    const up = await upload(pkg, tarball([resourcesJson([]), ...appFiles]));
    if (up.status !== 200) throw new Error(`upload: ${up.status} ${JSON.stringify(up.body)}`);
    const build = await api("POST", "/v3/builds", { package: { guid: pkg } });
    const staged = await until("staged", async () => {
      const b = await api("GET", `/v3/builds/${build.body.guid}`);
      return b.body.state === "STAGING" ? null : b.body;
    });
    if (staged.state !== "STAGED") throw new Error(`build: ${JSON.stringify(staged)}`);
    if (instances !== 1) await api("POST", `/v3/apps/${app}/processes/web/actions/scale`, { instances });
    await api("POST", `/v3/apps/${app}/actions/start`);
    await running(app, instances);
    return app;
  }

  return { api, upload, newPackage, running, answers, pushNode };
}
