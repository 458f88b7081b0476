// Kiln's NATS connection: reconnects forever with jitter, keeps publishes made while the
// bus is down and sends them once it is back, and reports its state as typed events.
// nats.js drops its outbound buffer on every reconnect attempt, so the buffering is ours.
//
//   const bus = await connectNats({ servers: url, user, pass, name: "router" });
//   bus.on("disconnected", ...); bus.state; bus.publish(subject, bytes); bus.nc (raw nats.js
//   connection for subscribe/request/JetStream); await bus.close();
import { EventEmitter } from "node:events";
import { connect, DebugEvents, Events, type NatsConnection, type NatsError, type PublishOptions } from "nats";
import { MessagingError } from "./errors.js";

export type ConnectionState = "connecting" | "connected" | "disconnected" | "reconnecting" | "closed";

export interface PermissionContext {
  operation: string;
  subject: string;
}

/** Listener arguments per event. */
export interface ConnectionEvents {
  /** First connection established (only listeners passed in `options.listeners` can see it). */
  connected: [{ server: string }];
  disconnected: [{ server: string }];
  /** One reconnect attempt is starting. */
  reconnecting: [{ server: string }];
  /** Back; `flushed` publishes made while down were sent. */
  reconnected: [{ server: string; flushed: number }];
  /** For good; `dropped` buffered publishes were never sent. */
  closed: [{ error: Error | null; dropped: number }];
  /** An asynchronous error from the server, e.g. a permissions violation (connection stays up). */
  error: [{ error: Error; code: string; permission: PermissionContext | null }];
}

export type ConnectionEvent = keyof ConnectionEvents;
export type ConnectionListener<E extends ConnectionEvent> = (...args: ConnectionEvents[E]) => void;

export interface ConnectNatsOptions {
  /** nats://host:port, or several. */
  servers: string | string[];
  user?: string;
  pass?: string;
  /** Client name shown by the server's monitoring (component and host). */
  name?: string;
  /** Pause between reconnect attempts to the same server; default 500 ms (recovery first). */
  reconnectTimeWaitMs?: number;
  /** Random extra pause up to this, so a fleet does not reconnect in lockstep; default 500 ms. */
  reconnectJitterMs?: number;
  /** Bytes of publishes kept while disconnected; beyond it publish throws KILN_MSG_BUFFER_FULL. Default 8 MiB. */
  reconnectBufSize?: number;
  /** Keep trying when NATS is not up yet at start (default true); false fails fast. */
  waitOnFirstConnect?: boolean;
  /** Per-attempt connect timeout; default 5000 ms. */
  timeoutMs?: number;
  /** Client pings to notice a dead server; default every 10 s, 3 unanswered = disconnected. */
  pingIntervalMs?: number;
  /** Listeners attached before connecting (the only way to see "connected"). */
  listeners?: { [E in ConnectionEvent]?: ConnectionListener<E> };
  /**
   * Stops waiting for the first connect (a component stopped while NATS is unreachable): the
   * promise rejects with the signal's reason, and a connection that still arrives is closed.
   */
  signal?: AbortSignal;
}

/** Kiln's connection policy; each can be overridden per connection. */
export const connectionDefaults = {
  reconnectTimeWaitMs: 500,
  reconnectJitterMs: 500,
  reconnectBufSize: 8 * 1024 * 1024,
  waitOnFirstConnect: true,
  timeoutMs: 5000,
  pingIntervalMs: 10_000,
  /** Unanswered pings before the connection counts as dead and reconnects. */
  maxPingOut: 3,
} as const;

interface Pending {
  subject: string;
  data: Uint8Array | undefined;
  options: PublishOptions | undefined;
}

export class KilnConnection {
  /** The nats.js connection, for subscribe, request and JetStream. Publish through `publish`. */
  readonly nc: NatsConnection;
  private readonly emitter = new EventEmitter();
  private currentState: ConnectionState = "connected";
  private readonly pending: Pending[] = [];
  private pendingBytes = 0;
  private readonly bufLimit: number;
  private closing: Promise<void> | null = null;
  private readonly done: Promise<void>;

  /** Use connectNats(). */
  constructor(nc: NatsConnection, bufLimit: number, listeners: ConnectNatsOptions["listeners"]) {
    this.nc = nc;
    this.bufLimit = bufLimit;
    if (listeners !== undefined) {
      for (const event of Object.keys(listeners) as ConnectionEvent[]) {
        const l = listeners[event];
        if (l !== undefined) this.emitter.on(event, l as (...args: unknown[]) => void);
      }
    }
    this.emit("connected", { server: nc.getServer() });
    void this.watchStatus();
    this.done = nc.closed().then((err) => {
      this.currentState = "closed";
      const dropped = this.pending.length;
      this.pending.length = 0;
      this.pendingBytes = 0;
      this.emit("closed", { error: err instanceof Error ? err : null, dropped });
    });
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** Publishes kept while disconnected, not yet sent. */
  get buffered(): { messages: number; bytes: number } {
    return { messages: this.pending.length, bytes: this.pendingBytes };
  }

  get server(): string {
    return this.nc.getServer();
  }

  on<E extends ConnectionEvent>(event: E, listener: ConnectionListener<E>): this {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  once<E extends ConnectionEvent>(event: E, listener: ConnectionListener<E>): this {
    this.emitter.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<E extends ConnectionEvent>(event: E, listener: ConnectionListener<E>): this {
    this.emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /**
   * Publishes now when connected; while disconnected keeps the message (up to
   * reconnectBufSize bytes) and sends it, in order, once reconnected.
   */
  publish(subject: string, data?: Uint8Array, options?: PublishOptions): void {
    const state = this.currentState;
    if (state === "connected") {
      this.nc.publish(subject, data, options);
      return;
    }
    if (state === "closed" || this.closing !== null) {
      throw new MessagingError(
        "KILN_MSG_CONNECTION_CLOSED",
        `cannot publish to ${subject}: the NATS connection is closed`,
      );
    }
    const size = subject.length + (data?.byteLength ?? 0);
    if (this.pendingBytes + size > this.bufLimit) {
      throw new MessagingError(
        "KILN_MSG_BUFFER_FULL",
        `cannot publish to ${subject}: NATS is unreachable and ${this.pendingBytes} bytes are already waiting (limit ${this.bufLimit})`,
      );
    }
    this.pending.push({ subject, data, options });
    this.pendingBytes += size;
  }

  /** Resolves once the server has processed everything sent so far. */
  flush(): Promise<void> {
    return this.nc.flush();
  }

  /** Drains subscriptions and pending publishes, then closes. */
  async drain(): Promise<void> {
    if (this.closing === null) this.closing = this.nc.isClosed() ? Promise.resolve() : this.nc.drain();
    await this.closing;
    await this.done;
  }

  /**
   * Drains when connected, but gives up after `ms` and closes; closes at once when not
   * connected. A component stopping must not wait for a server that may never come back
   * (the kernel and its nats-server killed together).
   */
  async drainWithin(ms: number): Promise<void> {
    if (this.currentState !== "connected") {
      await this.close();
      return;
    }
    const timer = setTimeout(() => void this.nc.close().catch(() => {}), ms);
    try {
      await this.drain();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes now (buffered publishes still waiting for a reconnect are dropped). */
  async close(): Promise<void> {
    if (this.closing === null) this.closing = this.nc.isClosed() ? Promise.resolve() : this.nc.close();
    await this.closing;
    await this.done;
  }

  private emit<E extends ConnectionEvent>(event: E, ...args: ConnectionEvents[E]): void {
    // An EventEmitter "error" without listeners throws; a connection error is not a crash.
    if (this.emitter.listenerCount(event) === 0) return;
    try {
      this.emitter.emit(event, ...args);
    } catch (err) {
      // A listener's bug must not stop this loop; surface it as Node does for other emitters.
      process.nextTick(() => {
        throw err;
      });
    }
  }

  private flushPending(): number {
    const n = this.pending.length;
    for (let i = 0; i < n; i++) {
      const p = this.pending[i] as Pending;
      this.nc.publish(p.subject, p.data, p.options);
    }
    this.pending.length = 0;
    this.pendingBytes = 0;
    return n;
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      const server = typeof s.data === "string" ? s.data : this.nc.getServer();
      switch (s.type) {
        case Events.Disconnect:
          if (this.currentState !== "closed") this.currentState = "disconnected";
          this.emit("disconnected", { server });
          break;
        case DebugEvents.Reconnecting:
          if (this.currentState !== "closed") this.currentState = "reconnecting";
          this.emit("reconnecting", { server });
          break;
        case Events.Reconnect: {
          // Send what waited before anything new: order is kept because this runs to completion.
          const flushed = this.flushPending();
          if (this.currentState !== "closed") this.currentState = "connected";
          this.emit("reconnected", { server, flushed });
          break;
        }
        case Events.Error: {
          const code = String(s.data);
          const permission = s.permissionContext
            ? { operation: s.permissionContext.operation, subject: s.permissionContext.subject }
            : null;
          const text = permission
            ? `NATS refused ${permission.operation} on ${permission.subject} (permissions violation)`
            : `NATS reported ${code}`;
          this.emit("error", { error: new Error(text), code, permission });
          break;
        }
        default:
          break;
      }
    }
  }
}

/**
 * Connects to NATS with Kiln's policy: reconnect forever with jitter, buffered publishes,
 * wait for a server that is not up yet. Throws KILN_MSG_CONNECT_FAILED (e.g. bad credentials).
 */
export function connectNats(options: ConnectNatsOptions): Promise<KilnConnection> {
  const signal = options.signal;
  const connecting = connectOnce(options);
  if (signal === undefined) return connecting;
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  aborted.catch(() => {
    // Stopped while connecting: close the connection if it still arrives.
    void connecting.then((b) => b.close()).catch(() => {});
  });
  return Promise.race([connecting, aborted]);
}

async function connectOnce(options: ConnectNatsOptions): Promise<KilnConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.servers,
      ...(options.user === undefined ? {} : { user: options.user, pass: options.pass ?? "" }),
      ...(options.name === undefined ? {} : { name: options.name }),
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? connectionDefaults.reconnectTimeWaitMs,
      reconnectJitter: options.reconnectJitterMs ?? connectionDefaults.reconnectJitterMs,
      waitOnFirstConnect: options.waitOnFirstConnect ?? connectionDefaults.waitOnFirstConnect,
      timeout: options.timeoutMs ?? connectionDefaults.timeoutMs,
      pingInterval: options.pingIntervalMs ?? connectionDefaults.pingIntervalMs,
      maxPingOut: connectionDefaults.maxPingOut,
    });
  } catch (err) {
    const e = err as NatsError;
    throw new MessagingError(
      "KILN_MSG_CONNECT_FAILED",
      `cannot connect to ${String(options.servers)}${options.user ? ` as ${options.user}` : ""}: ${e.message} (${e.code ?? "no code"})`,
      err,
    );
  }
  const conn = new KilnConnection(
    nc,
    options.reconnectBufSize ?? connectionDefaults.reconnectBufSize,
    options.listeners,
  );
  return conn;
}
