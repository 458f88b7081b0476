// manifest.yml: the one application `kiln push` deploys, read with its line numbers so a
// mistake is reported as `manifest.yml:7: applications[0].memory: …`, and merged with flags.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import { CliError } from "../errors.js";
import { parseSizeMb, sizeProblem } from "./size.js";

export type HealthCheckType = "port" | "process" | "http";

export interface AppManifest {
  name: string;
  path?: string;
  instances?: number;
  memoryMb?: number;
  diskMb?: number;
  command?: string;
  buildpacks?: string[];
  env?: Record<string, string>;
  /** `host[/path]` (a trailing `.domain` is left for the caller to strip). */
  routes?: string[];
  randomRoute?: boolean;
  noRoute?: boolean;
  healthCheckType?: HealthCheckType;
  healthCheckHttpEndpoint?: string;
  timeout?: number;
}

const KNOWN = new Set([
  "name",
  "path",
  "instances",
  "memory",
  "disk_quota",
  "command",
  "buildpacks",
  "buildpack",
  "env",
  "routes",
  "random-route",
  "no-route",
  "health-check-type",
  "health-check-http-endpoint",
  "timeout",
  // cf fields read elsewhere or harmless here.
  "stack",
  "services",
  "default-route",
]);

class Reader {
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  fail(node: Node | null | undefined, field: string, problem: string): never {
    const at = node?.range?.[0];
    const line = at === undefined ? "" : `:${this.lines.linePos(at).line}`;
    throw new CliError("KILN_CLI_MANIFEST", `${this.file}${line}: ${field}: ${problem}`);
  }
}

function show(node: Node): string {
  return isScalar(node) ? JSON.stringify(node.value) : isSeq(node) ? "a list" : "a map";
}

/** Parses manifest text; `file` is the name errors carry. */
export function parseManifest(text: string, file: string, appName?: string): AppManifest {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r: Reader = new Reader(file, lines);
  const first = doc.errors[0];
  if (first !== undefined) {
    const line = lines.linePos(first.pos[0]).line;
    const msg = first.message.split("\n")[0] ?? "not YAML";
    throw new CliError("KILN_CLI_MANIFEST", `${file}:${line}: ${msg}`);
  }
  const root = doc.contents;
  if (!isMap(root)) r.fail(root, "manifest", "must be a map with an applications list");
  const appsNode = root.get("applications", true) as Node | undefined;
  if (!isSeq(appsNode) || appsNode.items.length === 0) {
    r.fail(appsNode ?? root, "applications", "must be a list of at least one application");
  }
  let index = 0;
  if (appName !== undefined) {
    const found = appsNode.items.findIndex((a) => isMap(a) && scalarText(a.get("name", true)) === appName);
    index = Math.max(0, found);
  }
  const appNode = appsNode.items[index] as Node;
  const where = `applications[${index}]`;
  if (!isMap(appNode)) r.fail(appNode, where, "must be a map");
  return readApp(r, appNode, where);
}

function scalarText(node: unknown): string | undefined {
  return isScalar(node) && (typeof node.value === "string" || typeof node.value === "number")
    ? String(node.value)
    : undefined;
}

function readApp(r: Reader, app: YAMLMap, where: string): AppManifest {
  for (const pair of app.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    if (!KNOWN.has(key)) r.fail(pair.key as Node, `${where}.${key}`, "is not a field kiln knows");
  }
  const node = (key: string) => app.get(key, true) as Node | undefined;
  const field = (key: string) => `${where}.${key}`;
  const str = (key: string): string | undefined => {
    const n = node(key);
    if (n === undefined) return undefined;
    if (!isScalar(n) || !(typeof n.value === "string" || typeof n.value === "number")) {
      r.fail(n, field(key), `${show(n)} is not a string`);
    }
    return String(n.value);
  };
  const bool = (key: string): boolean | undefined => {
    const n = node(key);
    if (n === undefined) return undefined;
    if (!isScalar(n) || typeof n.value !== "boolean")
      r.fail(n, field(key), `${show(n)} is not true or false`);
    return n.value as boolean;
  };
  const int = (key: string, min: number): number | undefined => {
    const n = node(key);
    if (n === undefined) return undefined;
    if (!isScalar(n) || typeof n.value !== "number" || !Number.isInteger(n.value) || n.value < min) {
      r.fail(n, field(key), `${show(n)} is not a whole number of at least ${min}`);
    }
    return n.value as number;
  };
  const size = (key: string): number | undefined => {
    const n = node(key);
    if (n === undefined) return undefined;
    const text = isScalar(n) ? String(n.value) : "";
    const mb = parseSizeMb(text);
    if (mb === null)
      r.fail(n, field(key), isScalar(n) ? sizeProblem(text) : `${show(n)} is not a size like 256M`);
    return mb;
  };

  const name = str("name");
  if (name === undefined || name === "") r.fail(node("name") ?? app, field("name"), "is required");
  const m: AppManifest = { name };
  const path = str("path");
  if (path !== undefined) m.path = path;
  const instances = int("instances", 0);
  if (instances !== undefined) m.instances = instances;
  const memory = size("memory");
  if (memory !== undefined) m.memoryMb = memory;
  const disk = size("disk_quota");
  if (disk !== undefined) m.diskMb = disk;
  const command = str("command");
  if (command !== undefined) m.command = command;

  const bps = node("buildpacks");
  if (bps !== undefined) {
    if (!isSeq(bps)) r.fail(bps, field("buildpacks"), `${show(bps)} is not a list`);
    m.buildpacks = bps.items.map((item, i) => {
      const text = scalarText(item);
      if (text === undefined) r.fail(item as Node, `${field("buildpacks")}[${i}]`, "is not a string");
      return text;
    });
  }
  const legacy = str("buildpack");
  if (legacy !== undefined) {
    if (m.buildpacks !== undefined) {
      r.fail(node("buildpack"), field("buildpack"), "cannot be given together with buildpacks");
    }
    m.buildpacks = [legacy];
  }

  const env = node("env");
  if (env !== undefined) {
    if (!isMap(env)) r.fail(env, field("env"), `${show(env)} is not a map`);
    m.env = {};
    for (const pair of env.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : "";
      const v = pair.value as Node | null;
      if (!isScalar(v) || v.value === null || typeof v.value === "object") {
        r.fail(v ?? (pair.key as Node), `${field("env")}.${k}`, "is not a string, number or boolean");
      }
      m.env[k] = String(v.value);
    }
  }

  const routes = node("routes");
  if (routes !== undefined) {
    if (!isSeq(routes)) r.fail(routes, field("routes"), `${show(routes)} is not a list`);
    m.routes = routes.items.map((item, i) => {
      const at = `${field("routes")}[${i}]`;
      const route = isMap(item) ? (item.get("route", true) as Node | undefined) : undefined;
      const text = scalarText(route);
      if (text === undefined || text === "") r.fail((route ?? item) as Node, `${at}.route`, "is required");
      if (!/^[A-Za-z0-9.-]+(\/\S*)?$/.test(text)) {
        r.fail(route, `${at}.route`, `${JSON.stringify(text)} is not a route like host[/path]`);
      }
      return text;
    });
  }
  const random = bool("random-route");
  if (random !== undefined) m.randomRoute = random;
  const noRoute = bool("no-route");
  if (noRoute !== undefined) m.noRoute = noRoute;

  const hc = str("health-check-type");
  if (hc !== undefined) {
    if (hc !== "port" && hc !== "process" && hc !== "http") {
      r.fail(
        node("health-check-type"),
        field("health-check-type"),
        `${JSON.stringify(hc)} is not port, process or http`,
      );
    }
    m.healthCheckType = hc;
  }
  const endpoint = str("health-check-http-endpoint");
  if (endpoint !== undefined) {
    if (!endpoint.startsWith("/")) {
      r.fail(node("health-check-http-endpoint"), field("health-check-http-endpoint"), "must start with /");
    }
    m.healthCheckHttpEndpoint = endpoint;
  }
  const timeout = int("timeout", 1);
  if (timeout !== undefined) m.timeout = timeout;
  return m;
}

/** Reads and parses a manifest file; errors name it as given. */
export function readManifest(path: string, appName?: string): AppManifest {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(
      "KILN_CLI_MANIFEST",
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  return parseManifest(text, path === basename(path) ? path : path, appName);
}

/** What `kiln push` flags can set; each one given wins over the manifest. */
export interface PushFlags {
  path?: string | undefined;
  instances?: number | undefined;
  memoryMb?: number | undefined;
  diskMb?: number | undefined;
  command?: string | undefined;
  buildpacks?: string[] | undefined;
  noRoute?: boolean | undefined;
  randomRoute?: boolean | undefined;
}

export function applyFlags(m: AppManifest, f: PushFlags): AppManifest {
  const out: AppManifest = { ...m };
  if (f.path !== undefined) out.path = f.path;
  if (f.instances !== undefined) out.instances = f.instances;
  if (f.memoryMb !== undefined) out.memoryMb = f.memoryMb;
  if (f.diskMb !== undefined) out.diskMb = f.diskMb;
  if (f.command !== undefined) out.command = f.command;
  if (f.buildpacks !== undefined && f.buildpacks.length > 0) out.buildpacks = f.buildpacks;
  if (f.noRoute === true) out.noRoute = true;
  if (f.randomRoute === true) out.randomRoute = true;
  return out;
}
