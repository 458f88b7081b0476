// The router process: route table, worker threads running uWebSockets.js on one port,
// the NATS connection and route registry, the status server, and SIGTERM draining.
// `kiln router` calls runRouterCommand; tests and embedders call startRouter.

import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import { createServer } from "node:net";
import { Worker } from "node:worker_threads";
import { connectComponent } from "../kernel/lifecycle.js";
import { createLogger, type Logger } from "../kernel/log.js";
import { compiledSibling } from "../kernel/paths.js";
import { runUntilSignal } from "../kernel/run.js";
import type { KilnConnection } from "../messaging/connection.js";
import { createRouteTable } from "../native/table.js";
import type { RouteSink, RouteTable, RouteUpdate } from "../native/types.js";
import { parseRouterArgs, type RouterConfig, routerConfig } from "./config.js";
import { RouterError } from "./errors.js";
import type { CountersSnapshot } from "./metrics/counters.js";
import { renderMetrics, sumSnapshots } from "./metrics/prometheus.js";
import { RouteRegistry } from "./registry/registry.js";
import { tableSink } from "./registry/sink.js";
import { statusAuth } from "./status/auth.js";
import { startStatusServer } from "./status/server.js";
import type { FromWorker, ToWorker, WorkerInit } from "./worker.js";

export interface RouterHandle {
  readonly config: RouterConfig;
  /** The HTTP port all workers listen on (the real one when config.port was 0). */
  readonly port: number;
  readonly statusPort: number;
  readonly draining: boolean;
  readonly table: RouteTable;
  /** /health 503, stop accepting, let in-flight requests finish (up to drainTimeoutMs), then stop. */
  drain(): Promise<void>;
  /** Stops at once. */
  stop(): Promise<void>;
  /** Resolves with an exit code when the router stopped (0) or a worker failed (1). */
  readonly done: Promise<number>;
}

interface WorkerSlot {
  worker: Worker;
  index: number;
  exited: Promise<void>;
}

/** Every RouteUpdate batch goes to the main table and, with the fallback, to every worker. */
function routerSink(table: RouteTable, workers: WorkerSlot[], log: Logger): RouteSink {
  const base = tableSink(table, (u: RouteUpdate, err: unknown) =>
    log.warn("route_update_rejected", { op: u.op, uri: u.uri, error: err }),
  );
  const post = (m: ToWorker): void => {
    for (const w of workers) w.worker.postMessage(m);
  };
  // Workers cache endpoint details by handle and need no word about updates: an endpoint whose
  // address, app, index or tags change gets a new handle (a new generation), so a cached entry
  // never goes stale; clearing every cache on each batch made a re-registration burst (registrars
  // re-announce every route every 20 s) cost each worker a detail fetch per request.
  // After a prune the caches are cleared to drop the entries of endpoints that went away.
  if (table.shared) {
    return {
      apply: base.apply,
      prune(nowMs) {
        const n = base.prune(nowMs);
        if (n > 0) post({ type: "invalidate" });
        return n;
      },
    };
  }
  return {
    apply(updates, nowMs) {
      base.apply(updates, nowMs);
      post({ type: "updates", updates: updates as RouteUpdate[], nowMs });
    },
    prune(nowMs) {
      const n = base.prune(nowMs);
      post({ type: "prune", nowMs });
      return n;
    },
  };
}

/**
 * Binds `port` (0: any free one) for a moment, without SO_REUSEPORT, and gives back the port.
 * uSockets sets SO_REUSEPORT on the workers' sockets, so they would share a port with any
 * other such listener of the same user (an orphaned router, say) and split its connections;
 * a plain bind fails there with EADDRINUSE instead.
 */
function probePort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(port, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts the router; resolves once it routes (NATS connected, registry started). Aborting
 * `signal` while it starts (e.g. SIGTERM while NATS is unreachable) stops what already runs
 * and rejects with the signal's reason.
 */
export async function startRouter(
  config: RouterConfig,
  log: Logger = createLogger("router"),
  signal?: AbortSignal,
): Promise<RouterHandle> {
  // A status port off loopback without credentials is refused before anything starts.
  const auth = statusAuth(config);
  const table = createRouteTable({ emptyPoolTimeoutMs: config.emptyPoolTimeoutMs });
  const workers: WorkerSlot[] = [];
  const metricWaiters = new Map<number, { got: CountersSnapshot[]; want: number; resolve: () => void }>();
  let metricSeq = 0;
  let draining = false;
  let stopping: Promise<void> | null = null;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  let drainedCount = 0;
  let onAllDrained: (() => void) | null = null;
  let bus: KilnConnection | null = null;
  let registry: RouteRegistry | null = null;
  let status: Server | null = null;
  let failed = false;
  let upstreamKind = "";
  let fastPath = false;
  let scheduling = "";
  let sliceUs = 0;

  // uWebSockets.js reads its request-head limit once, when a worker first loads it: larger
  // heads are answered 431 by uWS itself (router/uws.ts).
  process.env.UWS_HTTP_MAX_HEADERS_SIZE = String(config.maxHeaderBytes);
  // Workers write access log lines to fd 1 themselves and count on it being non-blocking
  // (router/access-log.ts): a reader that stalls must cost dropped lines, not a worker
  // blocked in write(). Opening process.stdout has libuv set O_NONBLOCK on a pipe or socket
  // there (a Worker whose stdout is piped to ours opens it too; this does not rely on that).
  if (config.accessLog === "stdout") void process.stdout;
  const workerFile = compiledSibling(import.meta.url, "worker.js");
  const spawn = (index: number, port: number): Promise<{ slot: WorkerSlot; port: number }> =>
    new Promise((resolve, reject) => {
      const init: WorkerInit = { index, config, tableId: table.shared ? table.id : -1, port };
      const worker = new Worker(workerFile, { workerData: init, stdout: false, stderr: false });
      let listening = false;
      const exited = new Promise<void>((r) => worker.once("exit", () => r()));
      const slot: WorkerSlot = { worker, index, exited };
      worker.on("message", (m: FromWorker) => {
        switch (m.type) {
          case "listening":
            listening = true;
            upstreamKind = m.upstream;
            fastPath = m.fastPath;
            scheduling = m.scheduling;
            sliceUs = m.sliceUs;
            if (m.schedulingError !== "")
              log.warn("scheduling_not_applied", {
                worker: m.index,
                scheduling: config.scheduling,
                sliceUs: config.sliceUs,
                reason: m.schedulingError,
              });
            resolve({ slot, port: m.port });
            return;
          case "failed": {
            const err = new RouterError(
              m.code === "KILN_ROUTER_LISTEN_FAILED"
                ? "KILN_ROUTER_LISTEN_FAILED"
                : "KILN_ROUTER_UWS_UNAVAILABLE",
              m.message,
            );
            if (!listening) {
              void worker.terminate();
              reject(err);
            }
            return;
          }
          case "metrics": {
            const w = metricWaiters.get(m.seq);
            if (w !== undefined) {
              w.got.push(m.snapshot);
              if (w.got.length >= w.want) w.resolve();
            }
            return;
          }
          case "drained":
            drainedCount++;
            if (drainedCount >= workers.length) onAllDrained?.();
            return;
        }
      });
      worker.on("error", (err) => {
        log.error("worker_failed", { worker: index, error: err });
        if (!listening) reject(new RouterError("KILN_ROUTER_WORKER_FAILED", err.message, err));
      });
      worker.on("exit", (code) => {
        if (stopping === null && listening) {
          // Fail fast: a supervisor restarts the whole router with a clean table.
          log.error("worker_exited", { worker: index, code });
          failed = true;
          void stop();
        } else if (!listening)
          reject(new RouterError("KILN_ROUTER_WORKER_FAILED", `worker ${index} exited (${code})`));
      });
    });

  const postAll = (m: ToWorker): void => {
    for (const w of workers) w.worker.postMessage(m);
  };

  async function collect(): Promise<CountersSnapshot[]> {
    const seq = ++metricSeq;
    const waiter = { got: [] as CountersSnapshot[], want: workers.length, resolve: () => {} };
    const ready = new Promise<void>((r) => {
      waiter.resolve = r;
    });
    metricWaiters.set(seq, waiter);
    postAll({ type: "metrics", seq });
    const timer = setTimeout(() => waiter.resolve(), 1000);
    await ready;
    clearTimeout(timer);
    metricWaiters.delete(seq);
    return waiter.got;
  }

  async function stop(): Promise<void> {
    stopping ??= (async () => {
      draining = true;
      await registry?.stop().catch(() => {});
      await bus?.close().catch(() => {});
      postAll({ type: "stop" });
      await Promise.race([
        Promise.all(workers.map((w) => w.exited)),
        new Promise((r) => setTimeout(r, 3000).unref()),
      ]);
      await Promise.all(workers.map((w) => w.worker.terminate().catch(() => 0)));
      await new Promise<void>((r) => {
        if (status === null) r();
        else {
          status.close(() => r());
          status.closeAllConnections();
        }
      });
      try {
        table.close();
      } catch {
        // Already closed.
      }
      log.info("router_stopped", { failed });
      resolveDone(failed ? 1 : 0);
    })();
    return stopping;
  }

  async function drain(): Promise<void> {
    if (draining) return stopping ?? Promise.resolve();
    draining = true;
    log.info("router_draining", { drainWaitMs: config.drainWaitMs, drainTimeoutMs: config.drainTimeoutMs });
    if (config.drainWaitMs > 0) await new Promise((r) => setTimeout(r, config.drainWaitMs));
    const allDrained = new Promise<void>((r) => {
      onAllDrained = r;
      if (drainedCount >= workers.length) r();
    });
    postAll({ type: "drain" });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      allDrained.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), config.drainTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) log.warn("drain_timeout", { drainTimeoutMs: config.drainTimeoutMs });
    await stop();
  }

  try {
    // uSockets sets SO_REUSEPORT only for a fixed port: pick the port first so every worker
    // shares it, and make sure no other process listens there (probePort).
    const wanted = await probePort(config.host, config.port).catch((err: Error) => {
      throw new RouterError(
        "KILN_ROUTER_LISTEN_FAILED",
        `cannot listen on ${config.host}:${config.port}: ${err.message}`,
        err,
      );
    });
    const first = await spawn(0, wanted);
    workers.push(first.slot);
    const port = first.port;
    const rest = await Promise.all(Array.from({ length: config.threads - 1 }, (_, i) => spawn(i + 1, port)));
    for (const r of rest) workers.push(r.slot);

    const routerId = config.routerId || randomUUID();
    status = await startStatusServer(config.statusHost, config.statusPort, auth, {
      healthy: () =>
        draining
          ? { ok: false, reason: "draining" }
          : registry?.synced
            ? { ok: true, reason: "" }
            : { ok: false, reason: "routes not synced yet" },
      routes: () => table.dump(),
      metrics: async () => {
        const sum = sumSnapshots(await collect());
        const st = table.stats();
        return renderMetrics(sum, {
          routes: st.routes,
          endpoints: st.endpoints,
          natsState: bus?.state ?? "connecting",
          draining,
          workers: workers.length,
          registry: (registry?.counters() ?? {}) as unknown as Record<string, number>,
        });
      },
    }).catch((err: Error) => {
      throw new RouterError(
        "KILN_ROUTER_LISTEN_FAILED",
        `cannot listen on ${config.statusHost}:${config.statusPort} (status port): ${err.message}`,
        err,
      );
    });
    const addr = status.address();
    const statusPort = typeof addr === "object" && addr !== null ? addr.port : config.statusPort;

    bus = await connectComponent(`router-${routerId}`, config, log, signal);
    registry = new RouteRegistry({
      nc: bus.nc,
      sink: routerSink(table, workers, log),
      log: log.child("registry"),
      routerId,
      pruneIntervalMs: config.pruneIntervalMs,
      startIntervalMs: config.startIntervalSec * 1000,
      startResponseDelayMs: config.startResponseDelayMs,
      routeServices: config.routeServiceKey !== "",
    });
    await registry.start();
    log.info("router_listening", {
      port,
      statusPort,
      statusHost: config.statusHost,
      statusAuth: auth !== null,
      threads: workers.length,
      table: table.shared ? "native" : "fallback",
      upstream: upstreamKind,
      fastPath,
      scheduling,
      sliceUs,
      nats: config.natsUrl,
    });
    return {
      config,
      port,
      statusPort,
      get draining() {
        return draining;
      },
      table,
      drain,
      stop,
      done,
    };
  } catch (err) {
    failed = signal?.aborted !== true;
    await stop();
    throw err;
  }
}

/** `kiln router [flags]`: runs until SIGTERM/SIGINT (drains) and resolves with the exit code. */
export async function runRouterCommand(argv: string[]): Promise<number> {
  const log = createLogger("router");
  const config = routerConfig(parseRouterArgs(argv));
  return runUntilSignal(
    log,
    (signal) => startRouter(config, log, signal),
    (router) => void router.drain(),
  );
}
