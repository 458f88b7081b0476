// What a proxy under test looks like to a bench: where to send each case, which process
// trees to charge CPU to, and how to stop it.

/** The cases of the router bench. */
export type CaseId = "tiny" | "16k" | "1m" | "routes100k" | "accesslog";

/** "kiln-base": another build of Kiln (--kiln-base-bin), the reference of a before/after run. */
export type Family = "direct" | "nginx" | "haproxy" | "kiln" | "kiln-base";

/** Where a case's load goes: a port on 127.0.0.1 and the Host header values to use. */
export interface Endpoint {
  port: number;
  hosts: readonly string[];
}

export interface Target {
  /** Unique in a run, e.g. "nginx-2w". */
  readonly id: string;
  readonly family: Family;
  /** Human label, e.g. "nginx 1.22 (2 workers)". */
  readonly label: string;
  /** Where the case goes, or undefined when this target does not run the case. */
  endpoint(c: CaseId): Endpoint | undefined;
  /** Pids whose process trees are the proxy for this case (empty for no proxy). */
  cpuRoots(c: CaseId): number[];
  /** Called before each warm-up of a case (e.g. refresh route registrations). */
  prepare?(c: CaseId): Promise<void>;
  /** Facts for the report, asked for after the runs (e.g. how much access log was written). */
  describe?(): string[];
  stop(): Promise<void>;
}

/** The route names of a run: one host for the single-route cases, many for the table case. */
export interface RouteSet {
  single: string;
  /** Every registered host of the big table. */
  all: readonly string[];
  /** The hosts the load spreads over (a subset of `all`). */
  requested: readonly string[];
}

/** `count` hosts r000000.bench.kiln…, with `spread` of them (evenly spaced) requested. */
export function makeRouteSet(count: number, spread: number): RouteSet {
  const all: string[] = [];
  for (let i = 0; i < count; i++) all.push(`r${String(i).padStart(6, "0")}.bench.kiln`);
  const n = Math.max(1, Math.min(spread, count));
  const step = Math.floor(count / n);
  const requested: string[] = [];
  for (let k = 0; k < n; k++) requested.push(all[k * step] as string);
  return { single: "app.bench.kiln", all, requested };
}
