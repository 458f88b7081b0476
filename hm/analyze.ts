// The drift analysis: desired apps × actual instances × now → the cc.hm.requests that close the
// gap. Pure, so every rule is a row of a table test; the loop (hm/health-manager.ts) supplies
// the state and sends what comes out.
import type { HmRequest, InstanceHeartbeat } from "../messaging/codec.js";

/** What the HM needs of an app's record in kiln_apps. */
export interface DesiredApp {
  guid: string;
  /** Name and space, for the events the HM records about it. */
  name: string;
  space: string;
  state: "STARTED" | "STOPPED";
  instances: number;
  version: string;
  /** No droplet: nothing can run yet, so nothing is missing. */
  hasDroplet: boolean;
  /** When the HM saw the record change (ms): the controller is acting on the change meanwhile. */
  changedAt: number;
}

export interface AnalysisInput {
  /** Every app record; an app absent here (deleted) has all its instances stopped. */
  apps: ReadonlyMap<string, DesiredApp>;
  /** Apps deleted from the store, and when the HM saw it (ms). */
  deleted: ReadonlyMap<string, number>;
  /** Instances as the DEAs report them, by app. */
  actual: ReadonlyMap<string, readonly Pick<InstanceHeartbeat, "index" | "version" | "state">[]>;
  /** `${app}/${index}` → no START for that index before this time (ms): START grace or crash back-off. */
  holdUntil: ReadonlyMap<string, number>;
  now: number;
  graceMs: number;
}

const live = (s: string): boolean => s === "RUNNING" || s === "STARTING";

export const holdKey = (app: string, index: number): string => `${app}/${index}`;

/** START of missing indices, STOP of extra, old-version and undesired instances, one request per app and version. */
export function analyze(input: AnalysisInput): HmRequest[] {
  const out: HmRequest[] = [];
  const settled = (changedAt: number): boolean => input.now - changedAt >= input.graceMs;
  for (const [guid, instances] of input.actual) {
    const app = input.apps.get(guid);
    if (app === undefined) {
      // Unknown to the store: stopped only once it is known deleted and the controller has had its chance.
      const at = input.deleted.get(guid);
      if (at === undefined || !settled(at)) continue;
      for (const [version, indices] of group(instances.filter((i) => live(i.state))))
        out.push({ op: "STOP", app: guid, indices, version });
      continue;
    }
    if (!settled(app.changedAt)) continue;
    const wanted = app.state === "STARTED" && app.hasDroplet;
    const stop = instances.filter(
      (i) => live(i.state) && (!wanted || i.version !== app.version || i.index >= app.instances),
    );
    for (const [version, indices] of group(stop)) out.push({ op: "STOP", app: guid, indices, version });
  }
  for (const app of input.apps.values()) {
    if (app.state !== "STARTED" || !app.hasDroplet || app.instances === 0) continue;
    const up = new Set<number>();
    for (const i of input.actual.get(app.guid) ?? [])
      if (i.version === app.version && live(i.state)) up.add(i.index);
    const missing: number[] = [];
    for (let i = 0; i < app.instances; i++) {
      if (up.has(i)) continue;
      if ((input.holdUntil.get(holdKey(app.guid, i)) ?? 0) > input.now) continue;
      missing.push(i);
    }
    // A record that just changed is being started by the controller: leave it the grace period.
    if (missing.length > 0 && settled(app.changedAt))
      out.push({ op: "START", app: app.guid, indices: missing, version: app.version });
  }
  return out;
}

/** Distinct indices by version, each list sorted. */
function group(instances: readonly Pick<InstanceHeartbeat, "index" | "version">[]): Map<string, number[]> {
  const m = new Map<string, Set<number>>();
  for (const i of instances) {
    let s = m.get(i.version);
    if (s === undefined) {
      s = new Set();
      m.set(i.version, s);
    }
    s.add(i.index);
  }
  return new Map([...m].map(([v, s]) => [v, [...s].sort((a, b) => a - b)]));
}
