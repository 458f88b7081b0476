// A small Cloud Controller for the CLI's tests: a real node:http server on port 0 that keeps
// its state in memory and implements just enough of control/API.md to drive every command.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import type { AppRecord, RouteRecord } from "../../control/store/records.js";

/** The fake serves the controller's own record shapes, so the CLI is tested against them. */
export type FakeApp = AppRecord;
type FakeRoute = RouteRecord;

interface LogLine {
  seq: number;
  at: string;
  source: string;
  index: number | null;
  stream: string;
  text: string;
}

export interface Upload {
  entries: { path: string; size: number; mode: number }[];
  resources: { path: string; sha1: string; mode: number }[];
}

export class FakeCc {
  readonly server: Server;
  url = "";
  readonly users = new Map<string, { password: string; admin: boolean }>([
    ["admin", { password: "secret", admin: true }],
  ]);
  readonly tokens = new Map<string, string>();
  readonly spaces: { guid: string; name: string; created_at: string; members: string[] }[] = [];
  readonly apps: FakeApp[] = [];
  readonly routes: FakeRoute[] = [];
  readonly events: {
    guid: string;
    type: string;
    actor: string;
    target_guid: string;
    target_name: string;
    created_at: string;
  }[] = [];
  readonly logs = new Map<string, LogLine[]>();
  readonly held = new Set<string>();
  readonly uploads: Upload[] = [];
  readonly requests: string[] = [];
  readonly packages = new Map<string, string>();
  readonly builds = new Map<string, { guid: string; app_guid: string; polls: number }>();
  private seq = 0;
  private readonly followers = new Map<string, Set<ServerResponse>>();

  constructor() {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.error(res, 500, "KILN_CC_INTERNAL", String(err)));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const set of this.followers.values()) for (const res of set) res.end();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addSpace(name: string, members: string[] = []): string {
    const guid = randomUUID();
    this.spaces.push({ guid, name, created_at: new Date().toISOString(), members });
    return guid;
  }

  log(appGuid: string, source: string, text: string, index: number | null = 0): LogLine {
    const line: LogLine = {
      seq: ++this.seq,
      at: new Date().toISOString(),
      source,
      index,
      stream: "stdout",
      text,
    };
    const lines = this.logs.get(appGuid) ?? [];
    lines.push(line);
    this.logs.set(appGuid, lines);
    for (const res of this.followers.get(appGuid) ?? []) res.write(`${JSON.stringify(line)}\n`);
    return line;
  }

  private error(res: ServerResponse, status: number, code: string, detail: string): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    this.send(res, status, { errors: [{ code, title: code, detail }] });
  }

  private send(res: ServerResponse, status: number, body?: unknown): void {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  }

  private list(res: ServerResponse, items: unknown[]): void {
    this.send(res, 200, { pagination: { total_results: items.length, next: null }, resources: items });
  }

  private async body(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    return text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
  }

  private event(type: string, actor: string, app: FakeApp): void {
    this.events.push({
      guid: randomUUID(),
      type,
      actor,
      target_guid: app.guid,
      target_name: app.name,
      created_at: new Date().toISOString(),
    });
  }

  private visibleSpaces(user: string): string[] {
    const admin = this.users.get(user)?.admin === true;
    return this.spaces.filter((s) => admin || s.members.includes(user)).map((s) => s.guid);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const p = url.pathname;
    const m = req.method ?? "GET";
    this.requests.push(`${m} ${p}${url.search}`);
    if (m === "GET" && p === "/v3/info") return this.send(res, 200, { domain: "localhost" });
    if (m === "POST" && p === "/v3/tokens") {
      const b = await this.body(req);
      const u = this.users.get(String(b.username));
      if (u === undefined || u.password !== b.password) {
        return this.error(res, 401, "KILN_CC_UNAUTHENTICATED", "bad user name or password");
      }
      const token = randomUUID();
      this.tokens.set(token, String(b.username));
      return this.send(res, 201, {
        token,
        expires_at: "2099-01-01T00:00:00Z",
        user: { name: b.username, admin: u.admin },
      });
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const user = token === undefined ? undefined : this.tokens.get(token);
    if (token === undefined || user === undefined) {
      return this.error(res, 401, "KILN_CC_UNAUTHENTICATED", "no valid token");
    }
    const admin = this.users.get(user)?.admin === true;
    const spaces = this.visibleSpaces(user);
    const segs = p.split("/").slice(1); // ["v3", …]
    const findApp = (guid: string | undefined) =>
      this.apps.find((a) => a.guid === guid && spaces.includes(a.space_guid));

    if (m === "DELETE" && p === "/v3/tokens/current") {
      this.tokens.delete(token);
      return this.send(res, 204);
    }
    if (p === "/v3/users" && m === "POST") {
      if (!admin) return this.error(res, 403, "KILN_CC_FORBIDDEN", "admins only");
      const b = await this.body(req);
      if (this.users.has(String(b.username)))
        return this.error(res, 422, "KILN_CC_NAME_TAKEN", "user name taken");
      this.users.set(String(b.username), { password: String(b.password), admin: b.admin === true });
      return this.send(res, 201, { name: b.username, admin: b.admin === true });
    }
    if (p === "/v3/spaces" && m === "GET") {
      // Two to a page, so the client has to follow `next`.
      const all = this.spaces
        .filter((s) => spaces.includes(s.guid))
        .map(({ guid, name, created_at }) => ({ guid, name, created_at }));
      const page = Number(url.searchParams.get("page") ?? "1");
      const items = all.slice((page - 1) * 2, page * 2);
      const next = page * 2 < all.length ? { href: `${this.url}/v3/spaces?page=${page + 1}` } : null;
      return this.send(res, 200, { pagination: { total_results: all.length, next }, resources: items });
    }
    if (p === "/v3/spaces" && m === "POST") {
      if (!admin) return this.error(res, 403, "KILN_CC_FORBIDDEN", "admins only");
      const b = await this.body(req);
      if (this.spaces.some((s) => s.name === b.name)) {
        return this.error(res, 422, "KILN_CC_NAME_TAKEN", `space name ${String(b.name)} is taken`);
      }
      const guid = this.addSpace(String(b.name));
      return this.send(res, 201, { guid, name: b.name });
    }
    if (segs[1] === "spaces" && segs[3] === "members" && m === "POST") {
      const space = this.spaces.find((s) => s.guid === segs[2]);
      if (space === undefined) return this.error(res, 404, "KILN_CC_NOT_FOUND", "no such space");
      space.members.push(String((await this.body(req)).username));
      return this.send(res, 204);
    }
    if (p === "/v3/apps" && m === "GET") {
      const names = url.searchParams.get("names")?.split(",");
      const sg = url.searchParams.get("space_guids")?.split(",");
      return this.list(
        res,
        this.apps.filter(
          (a) =>
            spaces.includes(a.space_guid) &&
            (names === undefined || names.includes(a.name)) &&
            (sg === undefined || sg.includes(a.space_guid)),
        ),
      );
    }
    if (p === "/v3/apps" && m === "POST") {
      const b = await this.body(req);
      if (!spaces.includes(String(b.space_guid)))
        return this.error(res, 422, "KILN_CC_INVALID", "space_guid: unknown space");
      if (this.apps.some((a) => a.name === b.name && a.space_guid === b.space_guid)) {
        return this.error(res, 422, "KILN_CC_NAME_TAKEN", "app name taken");
      }
      const now = new Date().toISOString();
      const app: FakeApp = {
        guid: randomUUID(),
        name: String(b.name),
        space_guid: String(b.space_guid),
        state: "STOPPED",
        instances: 1,
        memory_in_mb: 256,
        disk_in_mb: 1024,
        command: null,
        buildpacks: ((b.lifecycle as { buildpacks?: string[] } | undefined)?.buildpacks ?? []) as string[],
        environment_variables: (b.environment_variables ?? {}) as Record<string, string>,
        health_check: { type: "port", endpoint: null, timeout: null },
        droplet_guid: null,
        version: randomUUID(),
        created_at: now,
        updated_at: now,
      };
      this.apps.push(app);
      this.event("audit.app.create", user, app);
      return this.send(res, 201, app);
    }
    if (segs[1] === "apps" && segs[2] !== undefined) {
      const app = findApp(segs[2]);
      if (app === undefined) return this.error(res, 404, "KILN_CC_NOT_FOUND", "app not found");
      const rest = segs.slice(3).join("/");
      if (rest === "" && m === "GET") return this.send(res, 200, app);
      if (rest === "" && m === "PATCH") {
        const b = await this.body(req);
        if (typeof b.command === "string") app.command = b.command;
        if (Array.isArray(b.buildpacks)) app.buildpacks = b.buildpacks as string[];
        if (b.health_check !== undefined) Object.assign(app.health_check, b.health_check);
        this.event("audit.app.update", user, app);
        return this.send(res, 200, app);
      }
      if (rest === "" && m === "DELETE") {
        this.apps.splice(this.apps.indexOf(app), 1);
        for (const r of this.routes) r.destinations = r.destinations.filter((d) => d.app_guid !== app.guid);
        return this.send(res, 204);
      }
      if (segs[3] === "actions" && m === "POST") {
        const action = segs[4];
        app.state = action === "stop" ? "STOPPED" : "STARTED";
        this.event(`audit.app.${action}`, user, app);
        if (app.state === "STARTED") this.log(app.guid, "APP", "listening");
        return this.send(res, 200, app);
      }
      if (rest === "environment_variables") {
        if (m === "PATCH") {
          const vars = ((await this.body(req)).var ?? {}) as Record<string, string | null>;
          for (const [k, v] of Object.entries(vars)) {
            if (v === null) delete app.environment_variables[k];
            else app.environment_variables[k] = v;
          }
        }
        return this.send(res, 200, { var: app.environment_variables });
      }
      if (rest === "processes/web/actions/scale" && m === "POST") {
        const b = await this.body(req);
        if (typeof b.instances === "number") app.instances = b.instances;
        if (typeof b.memory_in_mb === "number") app.memory_in_mb = b.memory_in_mb;
        if (typeof b.disk_in_mb === "number") app.disk_in_mb = b.disk_in_mb;
        return this.send(res, 202, app);
      }
      if (rest === "processes/web/stats" && m === "GET") {
        const up = app.state === "STARTED" && app.droplet_guid !== null;
        const resources = Array.from({ length: app.instances }, (_, index) => ({
          index,
          state: up ? "RUNNING" : "DOWN",
          host: "127.0.0.1",
          port: 61000 + index,
          uptime: 65,
          version: app.version,
          usage: { mem: 12 * 1048576, disk: 3 * 1048576, cpu: 0.015 },
        }));
        return this.send(res, 200, { resources });
      }
      if (rest === "relationships/current_droplet" && m === "PATCH") {
        const b = (await this.body(req)) as { data?: { guid?: string } };
        app.droplet_guid = b.data?.guid ?? null;
        return this.send(res, 200, { data: { guid: app.droplet_guid } });
      }
      if (rest === "logs" && m === "GET") {
        const lines = this.logs.get(app.guid) ?? [];
        if (url.searchParams.get("follow") !== "true") {
          res.writeHead(200, { "content-type": "application/x-ndjson" });
          return void res.end(lines.map((l) => `${JSON.stringify(l)}\n`).join(""));
        }
        const after = Number(url.searchParams.get("after_seq") ?? this.seq);
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.flushHeaders();
        for (const l of lines) if (l.seq > after) res.write(`${JSON.stringify(l)}\n`);
        const set = this.followers.get(app.guid) ?? new Set();
        set.add(res);
        this.followers.set(app.guid, set);
        res.on("close", () => set.delete(res));
        return;
      }
    }
    if (p === "/v3/routes" && m === "GET") {
      const sg = url.searchParams.get("space_guids")?.split(",");
      const ag = url.searchParams.get("app_guids")?.split(",");
      return this.list(
        res,
        this.routes.filter(
          (r) =>
            spaces.includes(r.space_guid) &&
            (sg === undefined || sg.includes(r.space_guid)) &&
            (ag === undefined || r.destinations.some((d) => ag.includes(d.app_guid))),
        ),
      );
    }
    if (p === "/v3/routes" && m === "POST") {
      const b = await this.body(req);
      const path = typeof b.path === "string" ? b.path : "";
      if (this.routes.some((r) => r.host === b.host && r.path === path)) {
        return this.error(res, 422, "KILN_CC_ROUTE_TAKEN", `route ${String(b.host)}${path} is taken`);
      }
      const route: FakeRoute = {
        guid: randomUUID(),
        host: String(b.host),
        path,
        url: `${String(b.host)}.localhost${path}`,
        space_guid: String(b.space_guid),
        destinations: [],
        created_at: new Date().toISOString(),
        updated_at: new Date().toISOString(),
      };
      this.routes.push(route);
      return this.send(res, 201, route);
    }
    if (segs[1] === "routes" && segs[3] === "destinations") {
      const route = this.routes.find((r) => r.guid === segs[2]);
      if (route === undefined) return this.error(res, 404, "KILN_CC_NOT_FOUND", "route not found");
      if (m === "POST") {
        const b = (await this.body(req)) as { destinations: { app: { guid: string } }[] };
        for (const d of b.destinations) route.destinations.push({ app_guid: d.app.guid });
        return this.send(res, 200, route);
      }
      route.destinations = route.destinations.filter((d) => d.app_guid !== segs[4]);
      return this.send(res, 204);
    }
    if (p === "/v3/audit_events" && m === "GET") {
      const tg = url.searchParams.get("target_guids")?.split(",");
      return this.list(
        res,
        this.events.filter((e) => tg === undefined || tg.includes(e.target_guid)),
      );
    }
    if (p === "/v3/resource_matches" && m === "POST") {
      const b = (await this.body(req)) as {
        resources: { checksum: { value: string }; size_in_bytes: number }[];
      };
      return this.send(res, 201, { resources: b.resources.filter((r) => this.held.has(r.checksum.value)) });
    }
    if (p === "/v3/packages" && m === "POST") {
      const b = (await this.body(req)) as { relationships: { app: { data: { guid: string } } } };
      const guid = randomUUID();
      this.packages.set(guid, b.relationships.app.data.guid);
      return this.send(res, 201, { guid, state: "AWAITING_UPLOAD", app_guid: b.relationships.app.data.guid });
    }
    if (segs[1] === "packages" && segs[3] === "upload" && m === "POST") {
      const upload: Upload = { entries: [], resources: [] };
      const parser = new Parser({
        onReadEntry: (entry: ReadEntry) => {
          const chunks: Buffer[] = [];
          entry.on("data", (c: Buffer) => chunks.push(c));
          entry.on("end", () => {
            const body = Buffer.concat(chunks);
            if (upload.entries.length === 0 && entry.path === ".kiln-resources.json") {
              upload.resources = JSON.parse(body.toString()) as Upload["resources"];
            }
            upload.entries.push({ path: entry.path, size: body.length, mode: entry.mode ?? 0 });
          });
        },
      });
      await pipeline(req, createGunzip(), parser);
      this.uploads.push(upload);
      return this.send(res, 200, { guid: segs[2], state: "READY" });
    }
    if (p === "/v3/builds" && m === "POST") {
      const b = (await this.body(req)) as { package: { guid: string } };
      const guid = randomUUID();
      const build = { guid, app_guid: this.packages.get(b.package.guid) ?? "", polls: 0 };
      this.builds.set(guid, build);
      setTimeout(() => this.log(build.app_guid, "STG", "-----> Installing dependencies", null), 50);
      return this.send(res, 201, { guid, state: "STAGING", error: null, log_tail: null, droplet_guid: null });
    }
    if (segs[1] === "builds" && m === "GET") {
      const build = this.builds.get(segs[2] ?? "");
      if (build === undefined) return this.error(res, 404, "KILN_CC_NOT_FOUND", "build not found");
      build.polls++;
      const app = this.apps.find((a) => a.guid === build.app_guid);
      const failing = app?.name.includes("broken") === true;
      if (build.polls < 2)
        return this.send(res, 200, { guid: build.guid, state: "STAGING", error: null, droplet_guid: null });
      if (failing) {
        return this.send(res, 200, {
          guid: build.guid,
          state: "FAILED",
          error: "no buildpack detected the app",
          error_code: "KILN_DEA_NO_BUILDPACK",
          log_tail: "-----> no buildpack matched\n",
          droplet_guid: null,
        });
      }
      // As the controller does: a staged build is the app's droplet at once, as a new version.
      if (app !== undefined && app.droplet_guid !== `droplet-${build.guid}`) {
        app.droplet_guid = `droplet-${build.guid}`;
        app.version = randomUUID();
      }
      return this.send(res, 200, {
        guid: build.guid,
        state: "STAGED",
        error: null,
        droplet_guid: `droplet-${build.guid}`,
      });
    }
    return this.error(res, 404, "KILN_CC_NOT_FOUND", `no route ${m} ${p}`);
  }
}
