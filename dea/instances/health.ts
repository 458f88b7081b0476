// An instance's health check as Cloud Foundry defines it: "port" (a TCP connect to its
// port is accepted), "http" (a GET of its endpoint answers 2xx) or "process" (running is
// enough). Tried at short intervals at first, so a fast app is routed within milliseconds,
// backing off to half a second.
import { request } from "node:http";
import { connect } from "node:net";

export type HealthCheckType = "port" | "http" | "process";

export interface HealthCheck {
  type: HealthCheckType;
  port: number;
  /** Path of the "http" check. */
  endpoint: string;
}

export function healthCheckType(value: string): HealthCheckType {
  return value === "http" || value === "process" ? value : "port";
}

const FIRST_INTERVAL_MS = 20;
/**
 * A check is one loopback connect or GET, cheap next to an instance nobody can reach yet: a
 * longer wait would leave a started app unrouted for up to that long (with 0.5 s, a node app
 * in a container that listened after 310 ms was routed only at 620 ms), and a crashed
 * instance's replacement answers that much later.
 */
const MAX_INTERVAL_MS = 100;
/** One attempt's own limit: a hung accept or response counts as a failure. */
const ATTEMPT_TIMEOUT_MS = 1000;

/** One attempt of the check; true when healthy. */
export function checkOnce(check: HealthCheck): Promise<boolean> {
  if (check.type === "process") return Promise.resolve(true);
  return new Promise((resolve) => {
    if (check.type === "port") {
      const s = connect({ host: "127.0.0.1", port: check.port });
      s.setTimeout(ATTEMPT_TIMEOUT_MS, () => s.destroy());
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("close", () => resolve(false));
      s.once("error", () => resolve(false));
      return;
    }
    const path = check.endpoint.startsWith("/") ? check.endpoint : `/${check.endpoint}`;
    const req = request(
      { host: "127.0.0.1", port: check.port, path, timeout: ATTEMPT_TIMEOUT_MS, agent: false },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(code >= 200 && code < 300);
      },
    );
    req.once("timeout", () => req.destroy());
    req.once("error", () => resolve(false));
    req.end();
  });
}

/**
 * Resolves true once `check` passes, false when `timeoutMs` passed without, or when
 * `gone()` says the instance is no longer there to check.
 */
export async function waitHealthy(
  check: HealthCheck,
  timeoutMs: number,
  gone: () => boolean,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let interval = FIRST_INTERVAL_MS;
  for (;;) {
    if (gone()) return false;
    if (await checkOnce(check)) return !gone();
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise((r) => setTimeout(r, Math.min(interval, left)));
    interval = Math.min(MAX_INTERVAL_MS, interval * 2);
  }
}
