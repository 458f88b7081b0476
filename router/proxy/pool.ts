// Keep-alive connection pools to backends, one per endpoint address per worker thread.
// A connection's socket listeners are bound once when it opens and forward to whatever
// exchange currently owns it, so a request adds no listeners and no closures.
import { connect, type Socket } from "node:net";

/** What owns an upstream connection while a request runs on it. */
export interface ConnOwner {
  onConnected(conn: UpConn): void;
  onUpstreamData(conn: UpConn, data: Buffer): void;
  onUpstreamDrain(conn: UpConn): void;
  /** The connection is gone; `errno` is the last socket error code, if any. */
  onUpstreamClose(conn: UpConn, errno: string | undefined): void;
  onUpstreamTimeout(conn: UpConn): void;
}

export interface PoolLimits {
  connectTimeoutMs: number;
  poolIdleTimeoutMs: number;
  maxIdlePerBackend: number;
}

export class UpConn {
  readonly socket: Socket;
  readonly pool: BackendPool;
  owner: ConnOwner | null = null;
  connected = false;
  /** Has carried at least one complete exchange (a failure may then be a stale keep-alive). */
  reused = false;
  idle = false;
  closed = false;
  private errno: string | undefined = undefined;

  constructor(pool: BackendPool) {
    this.pool = pool;
    const s = connect({ host: pool.host, port: pool.port, noDelay: true });
    this.socket = s;
    s.setTimeout(pool.limits.connectTimeoutMs);
    s.on("connect", this.onConnect);
    s.on("data", this.onData);
    s.on("drain", this.onDrain);
    s.on("error", this.onError);
    s.on("close", this.onClose);
    s.on("timeout", this.onTimeout);
  }

  private readonly onConnect = (): void => {
    this.connected = true;
    this.owner?.onConnected(this);
  };

  private readonly onData = (data: Buffer): void => {
    if (this.owner !== null) this.owner.onUpstreamData(this, data);
    else this.destroy(); // bytes nobody asked for: the connection is out of step
  };

  private readonly onDrain = (): void => {
    this.owner?.onUpstreamDrain(this);
  };

  private readonly onError = (err: Error & { code?: string }): void => {
    this.errno = err.code;
  };

  private readonly onClose = (): void => {
    this.closed = true;
    this.pool.forget(this);
    const owner = this.owner;
    this.owner = null;
    owner?.onUpstreamClose(this, this.errno);
  };

  private readonly onTimeout = (): void => {
    if (this.owner !== null) this.owner.onUpstreamTimeout(this);
    else this.destroy();
  };

  destroy(): void {
    if (!this.closed) this.socket.destroy();
  }
}

export class BackendPool {
  readonly host: string;
  readonly port: number;
  readonly limits: PoolLimits;
  /** Idle connections, most recently used last (LIFO keeps few sockets warm). */
  private readonly idleConns: UpConn[] = [];
  open = 0;

  constructor(host: string, port: number, limits: PoolLimits) {
    this.host = host;
    this.port = port;
    this.limits = limits;
  }

  /** An idle connection or a new one, owned by `owner`. */
  acquire(owner: ConnOwner): UpConn {
    for (;;) {
      const c = this.idleConns.pop();
      if (c === undefined) break;
      c.idle = false;
      if (c.closed || c.socket.destroyed) continue;
      c.owner = owner;
      return c;
    }
    const c = new UpConn(this);
    this.open++;
    c.owner = owner;
    return c;
  }

  /** Returns a connection whose exchange completed cleanly; keeps it if there is room. */
  release(c: UpConn, keep: boolean): void {
    c.owner = null;
    c.reused = true;
    if (!keep || c.closed || this.idleConns.length >= this.limits.maxIdlePerBackend) {
      c.destroy();
      return;
    }
    c.idle = true;
    c.socket.setTimeout(this.limits.poolIdleTimeoutMs);
    this.idleConns.push(c);
  }

  /** Called when a connection closes. */
  forget(c: UpConn): void {
    this.open--;
    if (c.idle) {
      c.idle = false;
      const i = this.idleConns.indexOf(c);
      if (i >= 0) this.idleConns.splice(i, 1);
    }
  }

  idleCount(): number {
    return this.idleConns.length;
  }

  /** Closes every idle connection (drain, shutdown). */
  closeIdle(): void {
    for (const c of this.idleConns.splice(0)) {
      c.idle = false;
      c.destroy();
    }
  }
}
