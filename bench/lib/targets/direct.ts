// The "no proxy" reference: load straight to the backend.
import type { CaseId, Endpoint, RouteSet, Target } from "./types.js";

export function directTarget(backendPort: number, routes: RouteSet): Target {
  return {
    id: "direct",
    family: "direct",
    label: "backend direct (no proxy)",
    endpoint(c: CaseId): Endpoint | undefined {
      if (c === "accesslog") return undefined;
      return { port: backendPort, hosts: c === "routes100k" ? routes.requested : [routes.single] };
    },
    cpuRoots: () => [],
    stop: async () => {},
  };
}
