// The `kiln push` flow against control/API.md: create or update the app, its routes, match
// and upload the changed files, build, start, and wait for a running instance.
import { randomBytes } from "node:crypto";
import { followLogs } from "../client/logs.js";
import { mapRoute, splitRoute } from "../client/routes.js";
import { appStats, lookupApp, q, type Session, targetSpace } from "../client/session.js";
import type {
  App,
  AuditEvent,
  Build,
  Info,
  InstanceStats,
  Package,
  ResourceMatch,
  Route,
} from "../client/types.js";
import { CliError } from "../errors.js";
import { formatLogLine } from "../output/logs.js";
import { note } from "../output/print.js";
import { progressBar } from "../output/progress.js";
import type { AppManifest } from "./manifest.js";
import { packageStream } from "./package.js";
import { type AppFile, scanAppDir } from "./scan.js";

export interface DeployOptions {
  /** The app folder, resolved. */
  dir: string;
  tty: boolean;
  /** How long to wait for a running instance. */
  startTimeoutMs?: number;
  pollMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** After a build finishes, staging lines still arriving are waited for until the log has been quiet this long… */
const TAIL_QUIET_MS = 100;
/** …and never longer than this. */
const TAIL_MAX_MS = 500;

/** The router's address part of a URL: `:8080` unless /v3/info says otherwise; none for 80. */
export function routerPort(info: Info): string {
  const port = typeof info.router_port === "number" ? info.router_port : 8080;
  return port === 80 ? "" : `:${port}`;
}

export function appUrl(route: { host: string; path?: string }, info: Info): string {
  const domain = typeof info.domain === "string" && info.domain !== "" ? info.domain : "localhost";
  return `http://${route.host}.${domain}${routerPort(info)}${route.path ?? ""}`;
}

async function createOrUpdate(s: Session, m: AppManifest): Promise<{ app: App; before: App | undefined }> {
  const space = targetSpace(s);
  const before = await lookupApp(s, m.name);
  let app = before;
  let created = false;
  if (app === undefined) {
    const body: Record<string, unknown> = { name: m.name, space_guid: space.guid };
    if (m.env !== undefined) body.environment_variables = m.env;
    if (m.buildpacks !== undefined) body.lifecycle = { buildpacks: m.buildpacks };
    app = await s.client.post<App>("/v3/apps", body);
    created = true;
    note(`Creating app ${m.name} in space ${space.name}`);
  } else {
    note(`Updating app ${m.name} in space ${space.name}`);
    if (m.env !== undefined) {
      await s.client.patch(`/v3/apps/${q(app.guid)}/environment_variables`, { var: m.env });
    }
  }
  const patch: Record<string, unknown> = {};
  if (m.command !== undefined) patch.command = m.command;
  if (m.buildpacks !== undefined && !created) patch.buildpacks = m.buildpacks;
  if (m.healthCheckType !== undefined || m.healthCheckHttpEndpoint !== undefined || m.timeout !== undefined) {
    const hc: Record<string, unknown> = { type: m.healthCheckType ?? app.health_check?.type ?? "port" };
    if (m.healthCheckHttpEndpoint !== undefined) hc.endpoint = m.healthCheckHttpEndpoint;
    if (m.timeout !== undefined) hc.timeout = m.timeout;
    patch.health_check = hc;
  }
  if (Object.keys(patch).length > 0) app = await s.client.patch<App>(`/v3/apps/${q(app.guid)}`, patch);
  const scale: Record<string, number> = {};
  if (m.instances !== undefined) scale.instances = m.instances;
  if (m.memoryMb !== undefined) scale.memory_in_mb = m.memoryMb;
  if (m.diskMb !== undefined) scale.disk_in_mb = m.diskMb;
  if (Object.keys(scale).length > 0) {
    app = await s.client.post<App>(`/v3/apps/${q(app.guid)}/processes/web/actions/scale`, scale);
  }
  return { app, before };
}

async function routes(s: Session, app: App, m: AppManifest, info: Info): Promise<Route[]> {
  if (m.noRoute === true) return [];
  const domain = typeof info.domain === "string" ? info.domain : "localhost";
  let wanted: { host: string; path: string }[];
  if (m.routes !== undefined && m.routes.length > 0) wanted = m.routes.map((r) => splitRoute(r, domain));
  else if (m.randomRoute === true)
    wanted = [{ host: `${m.name}-${randomBytes(3).toString("hex")}`, path: "" }];
  else {
    const held = await s.client.list<Route>(`/v3/routes?app_guids=${q(app.guid)}&per_page=5000`);
    if (held.length > 0) return held;
    wanted = [{ host: m.name.toLowerCase(), path: "" }];
  }
  const out: Route[] = [];
  for (const w of wanted) out.push(await mapRoute(s, app, w.host, w.path));
  return out;
}

async function upload(s: Session, app: App, files: AppFile[], tty: boolean): Promise<Package> {
  const candidates: ResourceMatch[] = files
    .filter((f) => f.size > 0)
    .map((f) => ({ checksum: { value: f.sha1 }, size_in_bytes: f.size }));
  const matched = new Set<string>();
  if (candidates.length > 0) {
    const res = await s.client.post<{ resources?: ResourceMatch[] }>("/v3/resource_matches", {
      resources: candidates,
    });
    for (const r of res?.resources ?? [])
      if (typeof r?.checksum?.value === "string") matched.add(r.checksum.value);
  }
  const toSend = files.filter((f) => !matched.has(f.sha1));
  const bytes = toSend.reduce((n, f) => n + f.size, 0);
  note(
    `Uploading ${toSend.length} of ${files.length} files (${(bytes / 1048576).toFixed(1)} MiB; ${matched.size} already held)`,
  );
  const pkg = await s.client.post<Package>("/v3/packages", {
    type: "bits",
    relationships: { app: { data: { guid: app.guid } } },
  });
  const bar = progressBar("Uploading", bytes, tty);
  const body = packageStream(files, matched, (n) => bar.add(n));
  let done: Package;
  try {
    done = await s.client.upload<Package>(`/v3/packages/${q(pkg.guid)}/upload`, body, "application/gzip");
  } finally {
    body.destroy();
  }
  bar.done();
  return done ?? pkg;
}

async function stage(s: Session, app: App, pkg: Package, pollMs: number): Promise<Build> {
  // The live log is attached before the build exists: the follow starts after the newest stored
  // line (taken when the controller answers the request), so no staging line is missed and no
  // history is read.
  const stop = new AbortController();
  let streamed = 0;
  let lastLineAt = 0;
  let attached: () => void = () => {};
  const open = new Promise<void>((r) => {
    attached = r;
  });
  const tail = followLogs(
    s.client,
    app.guid,
    undefined,
    (line) => {
      if (line.source !== "STG") return;
      streamed++;
      lastLineAt = Date.now();
      process.stdout.write(`${formatLogLine(line)}\n`);
    },
    stop.signal,
    attached,
  ).catch((err: unknown) => {
    if (!stop.signal.aborted) note(`kiln: the staging log stopped: ${(err as Error).message}`);
  });
  let build: Build | undefined;
  try {
    await Promise.race([open, tail]);
    build = await s.client.post<Build>("/v3/builds", { package: { guid: pkg.guid } });
    if (build.state === "STAGED") {
      // The controller reuses a droplet staged from the same files and settings.
      note(`Staging skipped: droplet ${build.droplet_guid} was built from the same files and settings`);
      return build;
    }
    note("Staging");
    while (build.state === "STAGING") {
      await sleep(pollMs);
      build = await s.client.get<Build>(`/v3/builds/${q(build.guid)}`);
    }
    // The last lines may still be on their way when the state flips: wait until the log has
    // been quiet for a moment, never long.
    const flipped = Date.now();
    while (Date.now() - flipped < TAIL_MAX_MS && Date.now() - Math.max(lastLineAt, flipped) < TAIL_QUIET_MS)
      await sleep(10);
  } finally {
    stop.abort();
    await tail;
  }
  if (build.state === "FAILED") {
    const lines = Array.isArray(build.log_tail) ? build.log_tail.join("\n") : (build.log_tail ?? "");
    if (streamed === 0 && lines !== "") process.stderr.write(`${lines.replace(/\n?$/, "\n")}`);
    const code = build.error_code ? ` [${build.error_code}]` : "";
    throw new CliError(
      "KILN_CLI_STAGING_FAILED",
      `staging ${app.name} failed: ${build.error ?? "no reason given"}${code}`,
    );
  }
  return build;
}

/** Throws when the controller recorded that it could not place instances of `version`. */
async function placementFailure(s: Session, app: App, version: string): Promise<void> {
  const events = await s.client.list<AuditEvent>(
    `/v3/audit_events?target_guids=${q(app.guid)}&types=app.start_failed&per_page=5000`,
  );
  for (const e of events) {
    const data = (e.data ?? {}) as { version?: unknown; reason?: unknown; code?: unknown };
    if (data.version !== version) continue;
    throw new CliError(
      "KILN_CLI_START_FAILED",
      `${app.name} could not be started: ${String(data.reason ?? "no reason given")} [${String(data.code ?? "")}]`,
    );
  }
}

/** Waits until an instance of `version` runs (any version when undefined). */
async function waitRunning(
  s: Session,
  app: App,
  version: string | undefined,
  timeoutMs: number,
  pollMs: number,
): Promise<InstanceStats[]> {
  const deadline = Date.now() + timeoutMs;
  for (let poll = 0; ; poll++) {
    // Now and then, whether the controller gave up placing this version (its audit trail).
    if (version !== undefined && poll % 10 === 9) await placementFailure(s, app, version);
    const stats = await appStats(s.client, app);
    if (stats.some((st) => st.state === "RUNNING" && (version === undefined || st.version === version)))
      return stats;
    const crashed = stats.filter((st) => st.state === "CRASHED").length;
    if (Date.now() > deadline) {
      throw new CliError(
        "KILN_CLI_START_TIMEOUT",
        `no instance of ${app.name} is running after ${Math.round(timeoutMs / 1000)} s${crashed > 0 ? ` (${crashed} crashed)` : ""}; see kiln logs ${app.name} --recent`,
      );
    }
    await sleep(pollMs);
  }
}

/** Runs the whole push; resolves with the app's URLs. */
export async function deploy(s: Session, m: AppManifest, options: DeployOptions): Promise<string[]> {
  // Staging and starting take a few hundred milliseconds here: a coarser poll would be most
  // of a push's time.
  const pollMs = options.pollMs ?? 100;
  const info = await s.client.json<Info>("GET", "/v3/info", { auth: false }).catch(() => ({}) as Info);
  const files = await scanAppDir(options.dir);
  const { app, before } = await createOrUpdate(s, m);
  const mapped = await routes(s, app, m, info);
  const pkg = await upload(s, app, files, options.tty);
  if (pkg.state === "FAILED") throw new CliError("KILN_CLI_API_RESPONSE", `the upload of ${app.name} failed`);
  const build = await stage(s, app, pkg, pollMs);
  let fresh = await s.client.get<App>(`/v3/apps/${q(app.guid)}`);
  // A finished build is already the app's droplet; another push may have raced this one.
  if (typeof build.droplet_guid === "string" && fresh.droplet_guid !== build.droplet_guid) {
    await s.client.patch(`/v3/apps/${q(app.guid)}/relationships/current_droplet`, {
      data: { guid: build.droplet_guid },
    });
    fresh = await s.client.get<App>(`/v3/apps/${q(app.guid)}`);
  }
  let version: string | undefined = fresh.version;
  if (fresh.state === "STARTED") {
    // The controller replaces a started app's instances whenever what runs changes (a new
    // droplet, env, command, limits): nothing to ask for, only to wait for the new version.
    note(
      before?.state === "STARTED" && before.version === fresh.version
        ? `Unchanged: ${app.name} keeps running`
        : `Restarting ${app.name}`,
    );
  } else {
    note(`Starting ${app.name}`);
    version = (await s.client.post<App>(`/v3/apps/${q(app.guid)}/actions/start`))?.version ?? version;
  }
  if (fresh.instances > 0) {
    const timeout = options.startTimeoutMs ?? Math.max(60, (m.timeout ?? 60) * 2) * 1000;
    await waitRunning(s, app, version, timeout, pollMs);
  }
  return mapped.map((r) => appUrl({ host: r.host, path: r.path }, info));
}
