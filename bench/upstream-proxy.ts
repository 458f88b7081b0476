// The proxy process of bench/upstream.ts: a minimal uWS front on one port (main thread, or N
// worker threads sharing the port) forwarding every request to one backend through either
// the native upstream client ("native"), a lean keep-alive client on `net` sockets ("js"),
// or answering by itself ("front", the front's own cost). Args: mode threads port backendPort.
import { connect, type Socket } from "node:net";
import { isMainThread, Worker, workerData } from "node:worker_threads";
import { createUpstream, RequestFlag, ResponseFlag, type Upstream } from "../native/upstream.js";
import { type HttpRequest, type HttpResponse, loadUws, type TemplatedApp } from "../router/uws.js";

const uWS = loadUws();

type Mode = "native" | "nativeh" | "js" | "front";
interface Config {
  mode: Mode;
  port: number;
  backendPort: number;
}

const BACKEND = "127.0.0.1";

/** The request head sent to the backend: request line and the client's headers as they came. */
function requestHead(req: HttpRequest): string {
  const q = req.getQuery();
  let head = `${req.getCaseSensitiveMethod()} ${req.getUrl()}${q ? `?${q}` : ""} HTTP/1.1\r\n`;
  req.forEach((k, v) => {
    head += `${k}: ${v}\r\n`;
  });
  return `${head}\r\n`;
}

// ---- native upstream -----------------------------------------------------------------

/**
 * "nativeh": the head block written the usual way, one writeHeader per field, to measure
 * what passing the validated block to writeStatus in one call saves.
 */
function writeHeadPerField(res: HttpResponse, head: string): void {
  let i = head.indexOf("\r\n");
  res.writeStatus(i < 0 ? head : head.slice(0, i));
  while (i >= 0) {
    const start = i + 2;
    const colon = head.indexOf(": ", start);
    const next = head.indexOf("\r\n", start);
    res.writeHeader(head.slice(start, colon), head.slice(colon + 2, next < 0 ? head.length : next));
    i = next;
  }
}

function serveNative(app: TemplatedApp, cfg: Config, perField: boolean): void {
  const responses: (HttpResponse | undefined)[] = [];
  const free: number[] = [];
  let nextId = 0;
  const lengths: number[] = [];
  // uWS cork callbacks read these instead of closures (no allocation per response).
  let cRes: HttpResponse | undefined;
  let cHead = "";
  let cBody: Uint8Array | null = null;
  let cId = 0;
  const release = (id: number): void => {
    responses[id] = undefined;
    free.push(id);
  };
  const endWhole = (): void => {
    const res = cRes as HttpResponse;
    if (perField) writeHeadPerField(res, cHead);
    else res.writeStatus(cHead);
    if (cBody === null) res.end();
    else res.end(cBody);
  };
  const startStream = (): void => {
    if (perField) writeHeadPerField(cRes as HttpResponse, cHead);
    else (cRes as HttpResponse).writeStatus(cHead);
    if (cBody !== null) pushChunk(cId, cBody, false);
  };
  const pushChunk = (id: number, chunk: Uint8Array, last: boolean): void => {
    const res = responses[id] as HttpResponse;
    const total = lengths[id] as number;
    if (total < 0) {
      // Unknown length (chunked from the backend): uWS chunks it again.
      const ok = res.write(chunk);
      if (last) {
        res.end();
        release(id);
      } else if (!ok) {
        up.pause(id);
        res.onWritable(() => {
          up.resume(id);
          return true;
        });
      }
      return;
    }
    const base = res.getWriteOffset();
    const [ok, done] = res.tryEnd(chunk, total);
    if (done) {
      release(id);
      return;
    }
    if (!ok) {
      up.pause(id);
      // uWS did not keep the unsent rest and the chunk is transient: keep a copy.
      const kept = Buffer.from(chunk);
      res.onWritable((offset) => {
        const [ok2, done2] = res.tryEnd(kept.subarray(offset - base), total);
        if (done2) release(id);
        else if (ok2) up.resume(id);
        return ok2;
      });
    }
  };
  const up: Upstream = createUpstream(
    { maxIdle: 256, transientBodies: true, dropDate: true },
    {
      onResponse(id, _status, head, body, flags, length) {
        const res = responses[id];
        if (res === undefined) return;
        lengths[id] = length;
        cRes = res;
        cHead = head;
        cBody = body;
        cId = id;
        if ((flags & ResponseFlag.COMPLETE) !== 0) {
          release(id);
          res.cork(endWhole);
        } else {
          res.cork(startStream);
        }
      },
      onData(id, chunk, last) {
        const res = responses[id];
        if (res === undefined) return;
        res.cork(() => pushChunk(id, chunk ?? Buffer.alloc(0), last));
      },
      onError(id) {
        const res = responses[id];
        if (res === undefined) return;
        release(id);
        res.cork(() => {
          res.writeStatus("502 Bad Gateway").end("bad gateway");
        });
      },
      onDrain() {},
    },
  );
  app.any("/*", (res, req) => {
    const id = free.pop() ?? nextId++;
    responses[id] = res;
    lengths[id] = -1;
    res.onAborted(() => {
      if (responses[id] === res) {
        up.abort(id);
        release(id);
      }
    });
    const head = requestHead(req);
    const flags = req.getMethod() === "head" ? RequestFlag.END | RequestFlag.HEAD : RequestFlag.END;
    const code = up.request(id, BACKEND, cfg.backendPort, head, null, flags);
    if (code !== 0) {
      release(id);
      res.writeStatus("503 Service Unavailable").end("busy");
    }
  });
}

// ---- lean JavaScript client on net sockets ---------------------------------------------

const CRLF2 = Buffer.from("\r\n\r\n");
const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "date", // uWS writes its own
]);

class JsConn {
  readonly socket: Socket;
  res: HttpResponse | undefined = undefined;
  partial: Buffer | null = null;
  inBody = false;
  remaining = 0;
  total = 0;
  statusLine = "";
  headers: string[] = [];
  base = 0;

  constructor(
    readonly client: JsClient,
    port: number,
  ) {
    this.socket = connect({ host: BACKEND, port, noDelay: true });
    this.socket.on("data", (d: Buffer) => this.onData(d));
    this.socket.on("close", () => client.lost(this));
    this.socket.on("error", () => {});
  }

  private onData(d: Buffer): void {
    const res = this.res;
    if (res === undefined) {
      this.socket.destroy();
      return;
    }
    let data = d;
    if (!this.inBody) {
      if (this.partial !== null) {
        data = Buffer.concat([this.partial, d]);
        this.partial = null;
      }
      const end = data.indexOf(CRLF2);
      if (end < 0) {
        this.partial = data;
        return;
      }
      const lines = data.toString("latin1", 0, end).split("\r\n");
      this.statusLine = (lines[0] as string).slice(9);
      this.headers.length = 0;
      let length = -1;
      for (let i = 1; i < lines.length; i++) {
        const line = lines[i] as string;
        const colon = line.indexOf(":");
        const name = line.slice(0, colon);
        const lower = name.toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (lower === "content-length") length = Number(value);
        if (!HOP.has(lower)) this.headers.push(name, value);
      }
      this.inBody = true;
      this.total = Math.max(length, 0);
      this.remaining = this.total;
      data = data.subarray(end + 4);
      if (data.length >= this.remaining) {
        this.client.cur = this;
        this.client.curBody = data;
        res.cork(this.client.endWhole);
        return;
      }
      this.client.cur = this;
      res.cork(this.client.writeHead);
    }
    this.remaining -= data.length;
    const chunk = data;
    res.cork(() => this.push(chunk));
  }

  writeHead(): void {
    const res = this.res as HttpResponse;
    res.writeStatus(this.statusLine);
    for (let i = 0; i < this.headers.length; i += 2) {
      res.writeHeader(this.headers[i] as string, this.headers[i + 1] as string);
    }
  }

  private push(chunk: Buffer): void {
    const res = this.res as HttpResponse;
    this.base = res.getWriteOffset();
    const [ok, done] = res.tryEnd(chunk, this.total);
    if (done) {
      this.finish();
      return;
    }
    if (!ok) {
      this.socket.pause();
      res.onWritable((offset) => {
        const [ok2, done2] = res.tryEnd(chunk.subarray(offset - this.base), this.total);
        if (done2) this.finish();
        else if (ok2) this.socket.resume();
        return ok2;
      });
    }
  }

  finish(): void {
    this.res = undefined;
    this.inBody = false;
    this.socket.resume();
    this.client.idle.push(this);
  }
}

class JsClient {
  idle: JsConn[] = [];
  cur: JsConn | undefined;
  curBody: Buffer | null = null;

  constructor(readonly port: number) {}

  readonly endWhole = (): void => {
    const c = this.cur as JsConn;
    c.writeHead();
    const res = c.res as HttpResponse;
    c.finish();
    res.end(this.curBody as Buffer);
  };

  readonly writeHead = (): void => {
    (this.cur as JsConn).writeHead();
  };

  send(res: HttpResponse, head: string): JsConn {
    const c = this.idle.pop() ?? new JsConn(this, this.port);
    c.res = res;
    c.socket.write(head, "latin1");
    return c;
  }

  lost(c: JsConn): void {
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    const res = c.res;
    c.res = undefined;
    if (res !== undefined) res.cork(() => res.writeStatus("502 Bad Gateway").end("bad gateway"));
  }
}

function serveJs(app: TemplatedApp, cfg: Config): void {
  const client = new JsClient(cfg.backendPort);
  app.any("/*", (res, req) => {
    const head = requestHead(req);
    const c = client.send(res, head);
    res.onAborted(() => {
      if (c.res === res) {
        c.res = undefined;
        c.socket.destroy();
      }
    });
  });
}

// ---- process / threads ----------------------------------------------------------------

function serve(cfg: Config): void {
  const app = uWS.App();
  if (cfg.mode === "native" || cfg.mode === "nativeh") serveNative(app, cfg, cfg.mode === "nativeh");
  else if (cfg.mode === "js") serveJs(app, cfg);
  else {
    // The same bodies as the backend, so the front's own cost is comparable per case.
    const bodies = new Map([
      ["/16k", Buffer.alloc(16 * 1024, "k")],
      ["/1m", Buffer.alloc(1024 * 1024, "m")],
    ]);
    app.any("/*", (res, req) => {
      const body = bodies.get(req.getUrl());
      res.writeHeader("Content-Type", "text/plain");
      res.end(body === undefined ? "ok" : body);
    });
  }
  app.listen("127.0.0.1", cfg.port, (token) => {
    if (!token) throw new Error(`cannot listen on ${cfg.port}`);
  });
}

if (isMainThread) {
  const [mode, threads, port, backendPort] = process.argv.slice(2);
  const cfg: Config = { mode: mode as Mode, port: Number(port), backendPort: Number(backendPort) };
  const n = Number(threads);
  if (n <= 1) serve(cfg);
  else for (let i = 0; i < n; i++) new Worker(new URL(import.meta.url), { workerData: cfg });
  process.on("SIGTERM", () => process.exit(0));
} else {
  serve(workerData as Config);
}
