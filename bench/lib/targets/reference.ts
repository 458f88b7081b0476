// What nginx and HAProxy have in common as reference proxies: one frontend for any Host
// (the single-route cases), one checking the Host against the big table's map, the access
// log case not run, and CPU charged to the proxy's own process tree.
import { type Managed, waitForPort, waitForStatus } from "../procs.js";
import type { CaseId, Endpoint, Family, RouteSet, Target } from "./types.js";

export interface ReferenceProxy {
  id: string;
  family: Family;
  label: string;
  proc: Managed;
  singlePort: number;
  tablePort: number;
  routes: RouteSet;
}

/** Waits until both frontends answer, then describes the proxy as a bench target. */
export async function referenceTarget(r: ReferenceProxy): Promise<Target> {
  await waitForPort(r.singlePort, r.proc);
  await waitForPort(r.tablePort, r.proc);
  await waitForStatus(r.tablePort, "/", [r.routes.requested[0] ?? r.routes.single], 200, 10000);
  return {
    id: r.id,
    family: r.family,
    label: r.label,
    endpoint(c: CaseId): Endpoint | undefined {
      if (c === "accesslog") return undefined;
      if (c === "routes100k") return { port: r.tablePort, hosts: r.routes.requested };
      return { port: r.singlePort, hosts: [r.routes.single] };
    },
    cpuRoots: () => [r.proc.pid],
    stop: () => r.proc.stop(),
  };
}
