// The router's options: one typed object, its defaults, and the environment variables
// and `kiln router` flags that override them (docs/config.md is generated from them).
import { availableParallelism } from "node:os";
import { applySettings, isServerUrl, parseFlags } from "../kernel/settings.js";
import { RouterError } from "./errors.js";
import { parseTrustedProxies } from "./handlers/forwarded.js";

/** Where access log lines go: nowhere, standard output, or a file (appended). */
export type AccessLogTarget = "off" | "stdout" | { file: string };

export interface RouterConfig {
  /** Address the HTTP listeners bind. */
  host: string;
  /** HTTP port (0 = random, reported in the `router_listening` log line). */
  port: number;
  /** Status port for /health, /routes, /metrics (0 = random). */
  statusPort: number;
  /**
   * Address the status port binds. Loopback by default: /routes lists every backend address,
   * app and instance id. Off loopback, /routes and /metrics need HTTP basic auth
   * (statusUser / statusPass); /health stays open for load balancers.
   */
  statusHost: string;
  /** Basic-auth user of /routes and /metrics when the status port is off loopback. */
  statusUser: string;
  /** Basic-auth password of /routes and /metrics when the status port is off loopback. */
  statusPass: string;
  /** Worker threads, each running uWebSockets.js on the same port. */
  threads: number;
  /** NATS server URL. */
  natsUrl: string;
  /** NATS user (`router` under `kiln up`). */
  natsUser: string;
  /** NATS password. */
  natsPass: string;
  /** Id announced in router.start (random per process when empty). */
  routerId: string;
  /** Backend TCP connect limit; a timeout is retried on another endpoint. */
  connectTimeoutMs: number;
  /** From the request's last byte sent to the backend's response head (504 after). */
  responseHeaderTimeoutMs: number;
  /** A backend connection that stays silent this long while a body streams is closed. */
  idleTimeoutMs: number;
  /** How long an unused keep-alive connection to a backend is kept. */
  poolIdleTimeoutMs: number;
  /** Unused keep-alive connections kept per backend (per worker thread). */
  maxIdlePerBackend: number;
  /** Attempts per request (first try included) when the backend cannot be reached. */
  maxAttempts: number;
  /** How long an endpoint that failed to connect is skipped by the balancer. */
  failedEndpointSkipMs: number;
  /** Cookies that make a response sticky (`__VCAP_ID__` is added next to them). */
  stickyCookies: string[];
  /** Access log: off, stdout, or a file path (appended). */
  accessLog: AccessLogTarget;
  /** SIGTERM: how long /health reports 503 before listeners close (load balancers notice). */
  drainWaitMs: number;
  /** SIGTERM: in-flight requests get this long to finish before the process exits. */
  drainTimeoutMs: number;
  /** Total request header bytes above which the router answers 431. */
  maxHeaderBytes: number;
  /** Largest WebSocket message relayed in either direction. */
  wsMaxMessageBytes: number;
  /**
   * X-Forwarded-Proto the router writes: the scheme of its own listener. A client's value is
   * kept only when it comes from one of trustedProxies.
   */
  forwardedProto: string;
  /**
   * Load balancers in front of the router (CIDRs or addresses). Their X-Forwarded-Proto is
   * kept, and the last X-Forwarded-For entry they add is taken as the client address (hash
   * balancing, access log). Empty: nobody is trusted.
   */
  trustedProxies: string[];
  /**
   * A client connection with no request in progress, or whose request body or response
   * stalls, is closed after this many seconds (uWS's HTTP idle timeout, fixed at 10 s
   * upstream); 0 = never, at most 900. uSockets counts it in 4 s ticks: N seconds close
   * after between 4*ceil(N/4)-4 and 4*ceil(N/4) s (10: 8 to 12 s).
   */
  clientIdleTimeoutSec: number;
  /**
   * Upload floor: a request body must bring minUploadRate * clientIdleTimeoutSec bytes within
   * each idle timeout, or its connection is closed (uWS's 16 KiB/s upstream); 0 = any byte
   * restarts the idle timeout.
   */
  minUploadRate: number;
  /**
   * Key for route services (gorouter's route_services_secret): a route registered with a
   * route_service_url goes through that service first, signed with AES-256-GCM under a key
   * derived from this. Empty: such registrations are refused.
   */
  routeServiceKey: string;
  /** A route service's signed callback older than this is refused (400). */
  routeServiceMaxAgeSec: number;
  /** Upstream client: "native" (C++ on libuv, needs the addon), "js" (net sockets), "auto" (native when built). */
  upstream: "auto" | "native" | "js";
  /**
   * Native request path (native/fastpath): the common request is served in C++ inside uWS,
   * with no JavaScript call. "on" uses it when the native table and upstream client are in use.
   */
  fastPath: "on" | "off";
  /**
   * Linux scheduling policy of the worker threads (native/src/thread_sched.cc). "normal": the
   * default policy. "batch": a worker woken by a socket waits for the running task to block or
   * end its slice instead of preempting it, so each wake-up serves more requests (more req/s
   * beside I/O-bound neighbours, a longer tail beside CPU-bound ones).
   */
  scheduling: "batch" | "normal";
  /**
   * Slice each worker thread asks the Linux scheduler for, in µs (native/src/thread_sched.cc):
   * 100-100000, or 0 to keep the one they start with (the kernel's, unless the router's parent
   * asked for another). Linux 6.12 and later (EEVDF) run a thread with a
   * short slice soon after a socket wakes it, so requests wait less for a core; its CPU share
   * is unchanged. Older kernels ignore it.
   */
  sliceUs: number;
  /** How often the registry prunes routes not refreshed within their stale threshold. */
  pruneIntervalMs: number;
  /**
   * How long a route whose last endpoint went (unregistered or pruned) is kept, empty,
   * answering 503 `no_endpoints` instead of 404 (gorouter's empty_pool_timeout with
   * empty_pool_response_code_503). A registration fills it again; the first prune after
   * the timeout removes it. 0 removes it at once.
   */
  emptyPoolTimeoutMs: number;
  /** router.start is announced at boot and then this often, seconds. */
  startIntervalSec: number;
  /**
   * After its first router.start, how long the router waits for registrars to answer before
   * /health turns 200 (gorouter's start_response_delay_interval).
   */
  startResponseDelayMs: number;
}

export const routerDefaults: RouterConfig = {
  host: "0.0.0.0",
  port: 8080,
  statusPort: 8081,
  statusHost: "127.0.0.1",
  statusUser: "",
  statusPass: "",
  threads: availableParallelism(),
  natsUrl: "nats://127.0.0.1:4222",
  natsUser: "",
  natsPass: "",
  routerId: "",
  connectTimeoutMs: 5_000,
  responseHeaderTimeoutMs: 60_000,
  idleTimeoutMs: 900_000,
  poolIdleTimeoutMs: 90_000,
  maxIdlePerBackend: 100,
  maxAttempts: 3,
  failedEndpointSkipMs: 30_000,
  stickyCookies: ["JSESSIONID"],
  accessLog: "off",
  drainWaitMs: 0,
  drainTimeoutMs: 20_000,
  maxHeaderBytes: 32 * 1024,
  wsMaxMessageBytes: 16 * 1024 * 1024,
  forwardedProto: "http",
  trustedProxies: [],
  clientIdleTimeoutSec: 10,
  minUploadRate: 16 * 1024,
  routeServiceKey: "",
  routeServiceMaxAgeSec: 60,
  upstream: "auto",
  fastPath: "on",
  scheduling: "normal",
  // The shortest the kernel takes: on 2 cores shared with the load generator and backend it
  // took p99 from 4.9 to 4.2 ms (tiny) and 5.5 to 4.4 ms (16 KiB) at no CPU cost (bench/RESULTS.md).
  sliceUs: 100,
  pruneIntervalMs: 30_000,
  // An app restart (stop, start, health check, register) takes seconds to tens of seconds;
  // 30 s covers one, the same span a failed endpoint is skipped (failedEndpointSkipMs) and
  // one prune interval, so a route is gone 30-60 s after its last endpoint.
  emptyPoolTimeoutMs: 30_000,
  startIntervalSec: 20,
  startResponseDelayMs: 1_000,
};

/** Environment variable of each option (lists are comma separated). */
export const routerEnv: Record<keyof RouterConfig, string> = {
  host: "KILN_ROUTER_HOST",
  port: "KILN_ROUTER_PORT",
  statusPort: "KILN_ROUTER_STATUS_PORT",
  statusHost: "KILN_ROUTER_STATUS_HOST",
  statusUser: "KILN_ROUTER_STATUS_USER",
  statusPass: "KILN_ROUTER_STATUS_PASS",
  threads: "KILN_ROUTER_THREADS",
  natsUrl: "KILN_NATS_URL",
  natsUser: "KILN_NATS_USER",
  natsPass: "KILN_NATS_PASS",
  routerId: "KILN_ROUTER_ID",
  connectTimeoutMs: "KILN_ROUTER_CONNECT_TIMEOUT_MS",
  responseHeaderTimeoutMs: "KILN_ROUTER_RESPONSE_TIMEOUT_MS",
  idleTimeoutMs: "KILN_ROUTER_IDLE_TIMEOUT_MS",
  poolIdleTimeoutMs: "KILN_ROUTER_POOL_IDLE_TIMEOUT_MS",
  maxIdlePerBackend: "KILN_ROUTER_MAX_IDLE_PER_BACKEND",
  maxAttempts: "KILN_ROUTER_MAX_ATTEMPTS",
  failedEndpointSkipMs: "KILN_ROUTER_FAILED_SKIP_MS",
  stickyCookies: "KILN_ROUTER_STICKY_COOKIES",
  accessLog: "KILN_ROUTER_ACCESS_LOG",
  drainWaitMs: "KILN_ROUTER_DRAIN_WAIT_MS",
  drainTimeoutMs: "KILN_ROUTER_DRAIN_TIMEOUT_MS",
  maxHeaderBytes: "KILN_ROUTER_MAX_HEADER_BYTES",
  wsMaxMessageBytes: "KILN_ROUTER_WS_MAX_MESSAGE_BYTES",
  forwardedProto: "KILN_ROUTER_FORWARDED_PROTO",
  trustedProxies: "KILN_ROUTER_TRUSTED_PROXIES",
  clientIdleTimeoutSec: "KILN_ROUTER_CLIENT_IDLE_TIMEOUT",
  minUploadRate: "KILN_ROUTER_MIN_UPLOAD_RATE",
  routeServiceKey: "KILN_ROUTER_ROUTE_SERVICE_KEY",
  routeServiceMaxAgeSec: "KILN_ROUTER_ROUTE_SERVICE_MAX_AGE",
  upstream: "KILN_ROUTER_UPSTREAM",
  fastPath: "KILN_ROUTER_FAST_PATH",
  scheduling: "KILN_ROUTER_SCHEDULING",
  sliceUs: "KILN_ROUTER_SLICE_US",
  pruneIntervalMs: "KILN_ROUTER_PRUNE_INTERVAL_MS",
  emptyPoolTimeoutMs: "KILN_ROUTER_EMPTY_POOL_TIMEOUT_MS",
  startIntervalSec: "KILN_ROUTER_START_INTERVAL_SEC",
  startResponseDelayMs: "KILN_ROUTER_START_RESPONSE_DELAY_MS",
};

/** `kiln router` flag of each option that has one. */
export const routerFlags: Partial<Record<keyof RouterConfig, string>> = {
  host: "host",
  port: "port",
  statusPort: "status-port",
  statusHost: "status-host",
  statusUser: "status-user",
  statusPass: "status-pass",
  threads: "threads",
  natsUrl: "nats",
  natsUser: "nats-user",
  natsPass: "nats-pass",
  routerId: "id",
  connectTimeoutMs: "connect-timeout-ms",
  responseHeaderTimeoutMs: "response-timeout-ms",
  idleTimeoutMs: "idle-timeout-ms",
  poolIdleTimeoutMs: "pool-idle-timeout-ms",
  maxIdlePerBackend: "max-idle-per-backend",
  maxAttempts: "max-attempts",
  failedEndpointSkipMs: "failed-skip-ms",
  stickyCookies: "sticky-cookies",
  accessLog: "access-log",
  drainWaitMs: "drain-wait-ms",
  drainTimeoutMs: "drain-timeout-ms",
  maxHeaderBytes: "max-header-bytes",
  wsMaxMessageBytes: "ws-max-message-bytes",
  forwardedProto: "forwarded-proto",
  trustedProxies: "trusted-proxies",
  clientIdleTimeoutSec: "client-idle-timeout",
  minUploadRate: "min-upload-rate",
  routeServiceKey: "route-service-key",
  routeServiceMaxAgeSec: "route-service-max-age",
  upstream: "upstream",
  fastPath: "fast-path",
  scheduling: "scheduling",
  sliceUs: "slice-us",
  pruneIntervalMs: "prune-interval-ms",
  emptyPoolTimeoutMs: "empty-pool-timeout-ms",
  startIntervalSec: "start-interval-sec",
  startResponseDelayMs: "start-response-delay-ms",
};

/** Usage line of `kiln router`. */
export const routerUsage = `${Object.values(routerFlags)
  .map((f) => `[--${f} V]`)
  .join(" ")}`;

function parseAccessLog(raw: string): AccessLogTarget {
  if (raw === "off" || raw === "" || raw === "none") return "off";
  if (raw === "stdout" || raw === "-") return "stdout";
  return { file: raw };
}

function convert(key: keyof RouterConfig, raw: string, source: string): RouterConfig[keyof RouterConfig] {
  const def = routerDefaults[key];
  if (key === "accessLog") return parseAccessLog(raw);
  if (key === "upstream") {
    if (raw !== "auto" && raw !== "native" && raw !== "js")
      throw new RouterError("KILN_ROUTER_CONFIG", `${source} must be auto, native or js, got "${raw}"`);
    return raw;
  }
  if (key === "fastPath") {
    if (raw === "on" || raw === "1") return "on";
    if (raw === "off" || raw === "0") return "off";
    throw new RouterError("KILN_ROUTER_CONFIG", `${source} must be on or off, got "${raw}"`);
  }
  if (key === "scheduling") {
    if (raw !== "batch" && raw !== "normal")
      throw new RouterError("KILN_ROUTER_CONFIG", `${source} must be batch or normal, got "${raw}"`);
    return raw;
  }
  if (key === "natsUrl") {
    // nats.js would find a bad URL only on its first connect, as a runtime failure (exit 1).
    if (!isServerUrl(raw))
      throw new RouterError(
        "KILN_ROUTER_CONFIG",
        `${source} must be a NATS URL such as nats://127.0.0.1:4222, got "${raw}"`,
      );
    return raw;
  }
  if (key === "sliceUs") {
    // The kernel clamps a slice to 0.1-100 ms; a value it would change is refused instead.
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isInteger(n) || (n !== 0 && (n < 100 || n > 100_000)))
      throw new RouterError(
        "KILN_ROUTER_CONFIG",
        `${source} must be 0 or an integer from 100 to 100000, got "${raw}"`,
      );
    return n;
  }
  if (Array.isArray(def)) {
    const list = raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    // Checked here, so a bad network is a configuration error (exit 2) before any worker starts.
    if (key === "trustedProxies") parseTrustedProxies(list, `${source} "${raw}"`);
    return list;
  }
  if (typeof def === "number") {
    const n = Number(raw);
    const max =
      key === "port" || key === "statusPort"
        ? 65535
        : key === "clientIdleTimeoutSec"
          ? 900 // uSockets' timeout counts up to 240 ticks of 4 s
          : key === "minUploadRate"
            ? 0xffff_ffff
            : Number.MAX_SAFE_INTEGER;
    const min = key === "threads" || key === "maxAttempts" ? 1 : 0;
    if (raw.trim() === "" || !Number.isInteger(n) || n < min || n > max)
      throw new RouterError(
        "KILN_ROUTER_CONFIG",
        `${source} must be an integer from ${min} to ${max}, got "${raw}"`,
      );
    return n;
  }
  return raw;
}

/** Defaults, then environment variables, then explicit overrides. */
export function routerConfig(
  overrides: Partial<RouterConfig> = {},
  env: NodeJS.ProcessEnv = process.env,
): RouterConfig {
  const cfg: RouterConfig = {
    ...routerDefaults,
    stickyCookies: [...routerDefaults.stickyCookies],
    trustedProxies: [...routerDefaults.trustedProxies],
  };
  return applySettings(cfg, routerEnv, convert, overrides, env);
}

/** Parses `kiln router` flags into overrides (unknown flags are a config error). */
export function parseRouterArgs(argv: string[]): Partial<RouterConfig> {
  return parseFlags(
    argv,
    routerFlags,
    convert,
    (m) => new RouterError("KILN_ROUTER_CONFIG", `kiln router: ${m}`),
  );
}
