// A router worker thread: uWebSockets.js on the shared port, the request handler that
// picks an endpoint and hands the request to an Exchange, and the WebSocket pass-through.
// Run compiled from dist/router/worker.js; talks to the main thread by messages.
import { parentPort, workerData } from "node:worker_threads";
import { createFallbackTable } from "../native/fallback/table.js";
import { setThreadScheduling, threadScheduling } from "../native/sched.js";
import { attachTable } from "../native/table.js";
import { type RouteTable, type RouteUpdate, SelectError } from "../native/types.js";
import { upstreamAvailable } from "../native/upstream.js";
import { AccessLog } from "./access-log.js";
import type { RouterConfig } from "./config.js";
import { type Refusal, Refusals } from "./errors.js";
import { requestClient } from "./handlers/forwarded.js";
import {
  bodyOf,
  collectHeader,
  framingLine,
  hashKeyFor,
  parseAppInstance,
  requestIdFor,
  scan,
  stickyIdFrom,
  traceparentFor,
} from "./handlers/request-headers.js";
import { METADATA, RouteServices, SIGNATURE, Step } from "./handlers/route-service.js";
import { ProxyContext } from "./proxy/context.js";
import { Exchange, ReqBody, refusalFor } from "./proxy/exchange.js";
import { FastPath } from "./proxy/fast.js";
import { NativeExchange, NativeSide } from "./proxy/native-exchange.js";
import { tableSink } from "./registry/sink.js";
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from "./uws.js";
import { loadUws } from "./uws.js";
import { wsBehavior } from "./ws/proxy.js";

export interface WorkerInit {
  index: number;
  config: RouterConfig;
  /** Id of the shared native table, or -1 when this worker keeps its own fallback table. */
  tableId: number;
  port: number;
}

/** Messages from the main thread. */
export type ToWorker =
  | { type: "updates"; updates: RouteUpdate[]; nowMs: number }
  | { type: "prune"; nowMs: number }
  | { type: "invalidate" }
  | { type: "metrics"; seq: number }
  | { type: "drain" }
  | { type: "stop" };

/** Messages to the main thread. */
export type FromWorker =
  | {
      type: "listening";
      index: number;
      port: number;
      upstream: "native" | "js";
      fastPath: boolean;
      /** This thread's scheduling policy and slice, and why the configured ones were not applied ("" if they were). */
      scheduling: string;
      sliceUs: number;
      schedulingError: string;
    }
  | { type: "failed"; index: number; code: string; message: string }
  | {
      type: "metrics";
      seq: number;
      index: number;
      snapshot: import("./metrics/counters.js").CountersSnapshot;
    }
  | { type: "drained"; index: number };

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error("router/worker.js runs as a worker thread");
const post = (m: FromWorker): void => port.postMessage(m);

let uWS: ReturnType<typeof loadUws>;
try {
  uWS = loadUws();
} catch (err) {
  const e = err as { code?: string; message: string };
  post({
    type: "failed",
    index: init.index,
    code: e.code ?? "KILN_ROUTER_UWS_UNAVAILABLE",
    message: e.message,
  });
  throw err;
}

const cfg = init.config;
// Before any socket exists: every wake-up of this thread is then under the chosen policy.
const schedulingError = setThreadScheduling(cfg.scheduling, cfg.sliceUs);
const table: RouteTable =
  init.tableId >= 0
    ? attachTable(init.tableId)
    : createFallbackTable({ emptyPoolTimeoutMs: cfg.emptyPoolTimeoutMs });
/** Applies the main thread's update batches to this thread's copy of the table (fallback only). */
const copySink = tableSink(table);
const accessLog = cfg.accessLog === "off" ? null : new AccessLog(cfg.accessLog);
const ctx = new ProxyContext(cfg, table, accessLog);
const maxHeaderBytes = cfg.maxHeaderBytes;
if (cfg.upstream === "native" && !upstreamAvailable) {
  const message = "--upstream native needs the built addon (KILN_NATIVE is 0 or the addon is missing)";
  post({ type: "failed", index: init.index, code: "KILN_ROUTER_CONFIG", message });
  throw new Error(message);
}
const side = cfg.upstream !== "js" && upstreamAvailable ? new NativeSide(ctx) : null;
ctx.native = side;
const routeServices = new RouteServices(cfg, ctx);
ctx.routeServices = routeServices;
/** One forwarder class per worker, so the request handler's `new` stays monomorphic. */
const ExchangeClass = side !== null ? NativeExchange : Exchange;
const forwardedProto = cfg.forwardedProto;
/** The native request path: needs the shared native table and the native upstream client. */
const fast =
  side !== null && init.tableId >= 0 && cfg.fastPath === "on" ? new FastPath(ctx, init.tableId) : null;

/** Answers with one of the router's own errors from inside the handler (already corked). */
function refuse(
  res: HttpResponse,
  r: Refusal,
  host: string,
  method: string,
  target: string,
  close: boolean,
  client: string,
): void {
  const t0 = performance.now();
  res
    .writeStatus(r.status)
    .writeHeader("X-Kiln-Router-Error", r.cause)
    .writeHeader("Content-Type", "text/plain; charset=utf-8");
  // A HEAD answer has the body's length and no body (exchange-base.ts writeRefusal).
  const bytes = method === "HEAD" ? 0 : r.body.length;
  if (method === "HEAD") res.endWithoutBody(r.body.length, close);
  else res.end(r.body, close);
  const status = Number(r.status.slice(0, 3));
  // Unknown hosts share one label: clients choose Host, and must not fill the metrics with it.
  const label = r === Refusals.noRoute ? "(unknown)" : host;
  ctx.counters.request(label, status, (performance.now() - t0) / 1000, bytes);
  accessLog?.line(Date.now(), host, method, target, status, bytes, performance.now() - t0, "", "", client);
}

function onRequest(res: HttpResponse, req: HttpRequest): void {
  const startHr = performance.now();
  const now = Date.now();
  const s = scan;
  s.reset();
  req.forEach(collectHeader);
  s.finish();
  const method = req.getCaseSensitiveMethod();
  const url = req.getUrl();
  // This uWS build returns undefined (not "") when the URL has no query.
  const query = req.getQuery() as string | undefined;
  const target = query === undefined || query === "" ? url : `${url}?${query}`;
  const host = s.host;
  const who = requestClient;
  who.read(ctx.trustedNets, res.getRemoteAddress(), s.xff);
  const peer = who.peer;
  const client = who.client;
  if (s.bytes > maxHeaderBytes) {
    refuse(res, Refusals.headersTooLarge, host, method, target, true, client);
    return;
  }
  // uWS's parser has refused every ambiguous framing already (native/uws HttpParser.h frameBody).
  const reqBody = bodyOf(s);
  let handle: number;
  let stickyId = "";
  let hashKey = "";
  let pinned = false;
  if (s.appInstance !== "") {
    const target2 = parseAppInstance(s.appInstance);
    if (target2 === null) {
      refuse(res, Refusals.badInstanceHeader, host, method, target, reqBody !== ReqBody.None, client);
      return;
    }
    pinned = true;
    handle = table.selectInstance(host, url, target2.app, target2.index, now);
  } else {
    stickyId = stickyIdFrom(s.cookie);
    handle = table.select(host, url, stickyId, "", now);
    if (handle === SelectError.NeedHashKey) {
      hashKey = hashKeyFor(table, host, url, req, client);
      handle = table.select(host, url, stickyId, hashKey, now);
    }
  }
  // Route services (router/handlers/route-service.ts): only a route that has one answers this.
  const rs = handle === SelectError.RouteService ? routeServices : null;
  if (rs !== null) {
    const sig = req.getHeader(SIGNATURE);
    const kind = rs.step(host, url, target, s.head, sig, req.getHeader(METADATA), now);
    if (kind === Step.Refused) {
      refuse(res, rs.refusal as Refusal, host, method, target, reqBody !== ReqBody.None, client);
      return;
    }
    handle = kind === Step.Service ? -1 : rs.selectApp(s.appInstance, stickyId, req, client, host, url, now);
    hashKey = rs.hashKey;
  }
  if (handle < 0 && (rs === null || rs.kind !== Step.Service)) {
    refuse(res, refusalFor(handle, Refusals), host, method, target, reqBody !== ReqBody.None, client);
    return;
  }
  const requestId = requestIdFor(s.vcapId);
  const headText =
    (rs === null
      ? `${method} ${target} HTTP/1.1\r\n${s.head}`
      : `${method} ${rs.target} HTTP/1.1\r\n${rs.head}${rs.extra}`) +
    `x-forwarded-for: ${s.xff === "" ? peer : `${s.xff}, ${peer}`}\r\n` +
    `x-forwarded-proto: ${who.trusted && s.xfp !== "" ? s.xfp : forwardedProto}\r\n` +
    `x-request-start: ${now}\r\n` +
    `x-vcap-request-id: ${requestId}\r\n` +
    `traceparent: ${traceparentFor(s.traceparent, requestId)}\r\n${framingLine(s, reqBody)}`;
  const ex = new ExchangeClass(
    ctx,
    res,
    handle,
    method,
    host,
    url,
    target,
    headText,
    reqBody,
    stickyId,
    hashKey,
    pinned,
    requestId,
    client,
    now,
    startHr,
  );
  if (rs !== null) {
    ex.via = rs.entry;
    ex.routeServiceDone = rs.kind === Step.App;
  }
  res.onAborted(ex.onAbortedBound);
  if (reqBody !== ReqBody.None) res.onData(ex.dataHandler());
  ex.start();
}

const app: TemplatedApp = uWS.App();
// uWS's client idle timeout and upload floor (fixed upstream at 10 s and 16 KiB/s).
app.kilnLimits(cfg.clientIdleTimeoutSec, cfg.minUploadRate);
app.ws("/*", wsBehavior(ctx, uWS));
if (fast !== null) app.kilnAny("/*", fast.address(), onRequest);
else app.any("/*", onRequest);

let listenSocket: us_listen_socket | null = null;
app.listen(cfg.host, init.port, (ls) => {
  if (ls === false) {
    post({
      type: "failed",
      index: init.index,
      code: "KILN_ROUTER_LISTEN_FAILED",
      message: `cannot listen on ${cfg.host}:${init.port}`,
    });
    return;
  }
  listenSocket = ls;
  const sched = threadScheduling();
  post({
    type: "listening",
    index: init.index,
    port: uWS.us_socket_local_port(ls),
    upstream: side === null ? "js" : "native",
    fastPath: fast !== null,
    scheduling: sched.policy,
    sliceUs: sched.sliceUs,
    schedulingError,
  });
});

function stopListening(): void {
  if (listenSocket !== null) {
    uWS.us_listen_socket_close(listenSocket);
    listenSocket = null;
  }
}

function shutdown(): void {
  stopListening();
  // uWS must close its sockets before the thread exits, or the process can crash. The
  // native path's backend outlives the app: closing the app aborts what is still in flight.
  (app as TemplatedApp & { close(): void }).close();
  fast?.close();
  ctx.closeIdle();
  side?.up.close();
  accessLog?.close();
  port?.close();
}

/** Adds what the native side counted on its own (request path, client resends) to ctx.counters. */
function readNativeCounts(): void {
  fast?.read();
  side?.countResent(ctx.counters);
}

/** Requests in flight on both paths. */
function inFlight(): number {
  return ctx.counters.inFlight + (fast === null ? 0 : fast.inFlight());
}

port.on("message", (m: ToWorker) => {
  switch (m.type) {
    case "updates":
      // An update this copy refuses was refused and logged by the main thread's table too.
      copySink.apply(m.updates, m.nowMs);
      // No ctx.invalidate(): changed endpoints get new handles (router/main.ts routerSink).
      return;
    case "prune":
      table.prune(m.nowMs);
      ctx.invalidate();
      fast?.invalidate();
      return;
    case "invalidate":
      ctx.invalidate();
      fast?.invalidate();
      return;
    case "metrics": {
      readNativeCounts();
      const snapshot = ctx.counters.snapshot();
      snapshot.inFlight = inFlight();
      snapshot.accessLogDropped =
        (accessLog === null ? 0 : accessLog.dropped) + (fast === null ? 0 : fast.accessLogDropped());
      post({ type: "metrics", seq: m.seq, index: init.index, snapshot });
      return;
    }
    case "drain": {
      stopListening();
      // Both paths' requests are counted; a poll is simpler than a callback from each.
      const check = (): void => {
        if (inFlight() > 0) return;
        clearInterval(poll);
        readNativeCounts();
        post({ type: "drained", index: init.index });
      };
      const poll = setInterval(check, 10);
      check();
      return;
    }
    case "stop":
      shutdown();
      return;
  }
});
