// Promise face over the native Upstream for tests: one pending entry per request id,
// collecting the head, the body chunks and the error code of each exchange.
import {
  createUpstream,
  RequestFlag,
  RequestIds,
  ResponseFlag,
  type Upstream,
  type UpstreamOptions,
} from "../../native/upstream.js";

export interface Result {
  status: number;
  head: string;
  body: Buffer;
  flags: number;
  length: number;
  /** onResponse + onData calls seen. */
  callbacks: number;
  error: number;
}

interface Pending {
  result: Result;
  chunks: Uint8Array[];
  resolve: (r: Result) => void;
  onChunk?: (id: number, chunk: Uint8Array) => void;
  keepBody: boolean;
}

export interface SendOptions {
  host?: string;
  body?: Buffer | null;
  flags?: number;
  /** Called with every body chunk (for pause/resume tests). */
  onChunk?: (id: number, chunk: Uint8Array) => void;
  /** False: do not keep body chunks (result.body stays empty), for big downloads. */
  keepBody?: boolean;
  /** Called with the request id right after request() (for streaming bodies). */
  started?: (id: number) => void;
}

export class TestClient {
  readonly up: Upstream;
  readonly ids = new RequestIds();
  readonly pending = new Map<number, Pending>();
  readonly drains = new Map<number, () => void>();

  private readonly transient: boolean;

  constructor(options: UpstreamOptions = {}) {
    this.transient = options.transientBodies === true;
    this.up = createUpstream(options, {
      onResponse: (id, status, head, body, flags, length) => {
        const p = this.pending.get(id);
        if (p === undefined) throw new Error(`onResponse for unknown id ${id}`);
        Object.assign(p.result, { status, head, flags, length });
        p.result.callbacks++;
        if (body !== null) this.chunk(p, id, body);
        if ((flags & ResponseFlag.COMPLETE) !== 0) this.finish(id, p);
      },
      onData: (id, chunk, last) => {
        const p = this.pending.get(id);
        if (p === undefined) throw new Error(`onData for unknown id ${id}`);
        p.result.callbacks++;
        if (chunk !== null) this.chunk(p, id, chunk);
        if (last) this.finish(id, p);
      },
      onError: (id, code) => {
        const p = this.pending.get(id);
        if (p === undefined) throw new Error(`onError for unknown id ${id}`);
        p.result.error = code;
        this.finish(id, p);
      },
      onDrain: (id) => {
        const d = this.drains.get(id);
        this.drains.delete(id);
        d?.();
      },
    });
  }

  private chunk(p: Pending, id: number, chunk: Uint8Array): void {
    // Transient bodies are only valid during the callback: keep a copy.
    if (p.keepBody) p.chunks.push(this.transient ? Buffer.from(chunk) : chunk);
    p.onChunk?.(id, chunk);
  }

  private finish(id: number, p: Pending): void {
    this.pending.delete(id);
    this.ids.release(id);
    p.result.body = Buffer.concat(p.chunks);
    p.resolve(p.result);
  }

  /** Sends one request; resolves with the response or the error code. */
  send(port: number, head: string, opts: SendOptions = {}): Promise<Result> {
    const id = this.ids.acquire();
    return new Promise<Result>((resolve) => {
      const result: Result = {
        status: 0,
        head: "",
        body: Buffer.alloc(0),
        flags: 0,
        length: -1,
        callbacks: 0,
        error: 0,
      };
      const p: Pending = { result, chunks: [], resolve, keepBody: opts.keepBody !== false };
      if (opts.onChunk !== undefined) p.onChunk = opts.onChunk;
      this.pending.set(id, p);
      const code = this.up.request(
        id,
        opts.host ?? "127.0.0.1",
        port,
        head,
        opts.body ?? null,
        opts.flags ?? RequestFlag.END,
      );
      if (code !== 0) {
        result.error = code;
        this.finish(id, p);
        return;
      }
      opts.started?.(id);
    });
  }

  get(port: number, path = "/", extra = ""): Promise<Result> {
    return this.send(port, `GET ${path} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`);
  }

  /** Writes a request body chunk, waiting for onDrain when the queue is full. */
  async write(id: number, chunk: Buffer): Promise<void> {
    if (this.up.write(id, chunk)) return;
    await new Promise<void>((resolve) => this.drains.set(id, resolve));
  }
}
