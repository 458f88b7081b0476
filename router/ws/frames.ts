// WebSocket frames on the router's backend side (RFC 6455): the router is the client
// there, so what it sends is masked and what it reads is not.
import { randomFillSync } from "node:crypto";

export const Op = { Continuation: 0, Text: 1, Binary: 2, Close: 8, Ping: 9, Pong: 10 } as const;

/** One masked frame carrying `payload` (FIN set). */
export function encodeFrame(op: number, payload: Uint8Array): Buffer {
  const len = payload.length;
  const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(hl + 4 + len);
  out[0] = 0x80 | op;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  randomFillSync(out, hl, 4);
  const m0 = out[hl] as number;
  const m1 = out[hl + 1] as number;
  const m2 = out[hl + 2] as number;
  const m3 = out[hl + 3] as number;
  const base = hl + 4;
  for (let i = 0; i < len; i++) {
    const m = (i & 3) === 0 ? m0 : (i & 3) === 1 ? m1 : (i & 3) === 2 ? m2 : m3;
    out[base + i] = (payload[i] as number) ^ m;
  }
  return out;
}

/** A close frame with `code` (omitted for 1005, "no status") and a short reason. */
export function encodeClose(code: number, reason: Uint8Array): Buffer {
  if (code === 1005 || code === 1006 || code < 1000) return encodeFrame(Op.Close, new Uint8Array(0));
  const payload = Buffer.allocUnsafe(2 + Math.min(reason.length, 123));
  payload.writeUInt16BE(code, 0);
  payload.set(reason.subarray(0, 123), 2);
  return encodeFrame(Op.Close, payload);
}

export interface FrameSink {
  /** A whole message (fragments joined). */
  onMessage(payload: Buffer, binary: boolean): void;
  onPing(payload: Buffer): void;
  onClose(code: number, reason: Buffer): void;
  onProtocolError(): void;
}

/** Reads frames from a backend; joins fragments; bounded by `maxMessage`. */
export class FrameReader {
  private buf: Buffer | null = null;
  private frags: Buffer[] | null = null;
  private fragBinary = false;
  private fragBytes = 0;
  private readonly maxMessage: number;

  constructor(maxMessage: number) {
    this.maxMessage = maxMessage;
  }

  push(data: Buffer, sink: FrameSink): void {
    let buf = this.buf === null ? data : Buffer.concat([this.buf, data]);
    this.buf = null;
    for (;;) {
      if (buf.length < 2) break;
      const b0 = buf[0] as number;
      const b1 = buf[1] as number;
      const fin = (b0 & 0x80) !== 0;
      const op = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) break;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) break;
        const big = buf.readBigUInt64BE(2);
        if (big > BigInt(this.maxMessage)) {
          sink.onProtocolError();
          return;
        }
        len = Number(big);
        off = 10;
      }
      if (len > this.maxMessage) {
        sink.onProtocolError();
        return;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) break;
      let payload = buf.subarray(off, off + len);
      if (masked) {
        payload = Buffer.from(payload);
        for (let i = 0; i < len; i++)
          payload[i] = (payload[i] as number) ^ (buf[maskOff + (i & 3)] as number);
      }
      buf = buf.subarray(off + len);
      if (op === Op.Text || op === Op.Binary) {
        if (fin) sink.onMessage(payload, op === Op.Binary);
        else {
          this.frags = [Buffer.from(payload)];
          this.fragBinary = op === Op.Binary;
          this.fragBytes = len;
        }
      } else if (op === Op.Continuation) {
        if (this.frags === null) {
          sink.onProtocolError();
          return;
        }
        this.frags.push(Buffer.from(payload));
        this.fragBytes += len;
        if (this.fragBytes > this.maxMessage) {
          sink.onProtocolError();
          return;
        }
        if (fin) {
          const whole = Buffer.concat(this.frags);
          this.frags = null;
          sink.onMessage(whole, this.fragBinary);
        }
      } else if (op === Op.Ping) sink.onPing(payload);
      else if (op === Op.Close) {
        sink.onClose(payload.length >= 2 ? payload.readUInt16BE(0) : 1005, payload.subarray(2));
        return;
      } else if (op !== Op.Pong) {
        sink.onProtocolError();
        return;
      }
    }
    if (buf.length > 0) this.buf = Buffer.from(buf);
  }
}
