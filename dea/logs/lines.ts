// Splits an app's output into lines as it arrives, on byte boundaries (a multi-byte
// character split across two reads stays whole), cutting lines over `maxBytes` into pieces
// so one endless line cannot grow the DEA's memory. The staging driver, the buildpacks and
// every instance are read through this one splitter.
import type { Readable } from "node:stream";

/** Longest line published as one log message; longer ones are cut (a log line is at most 64 KiB on the wire). */
export const MAX_LINE_BYTES = 16 * 1024;

const LF = 0x0a;
const CR = 0x0d;

export class LineSplitter {
  private carry: Buffer | null = null;

  constructor(
    private readonly onLine: (text: string) => void,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(LF, start);
      if (nl === -1) break;
      this.emitCut(buf, start, nl);
      start = nl + 1;
    }
    // An unfinished line longer than the limit goes out in pieces now; the rest waits.
    if (buf.length - start > this.maxBytes) start = this.emitCut(buf, start, buf.length, true);
    if (start < buf.length) this.carry = Buffer.from(buf.subarray(start));
  }

  /** Emits what is left without a final newline. */
  end(): void {
    const rest = this.carry;
    this.carry = null;
    if (rest !== null && rest.length > 0) this.emit(rest, 0, rest.length);
  }

  /**
   * Emits buf[from, to) in pieces of at most maxBytes, each cut before a UTF-8 continuation
   * byte so no character is split. With `keepTail`, the last piece (at most maxBytes) is not
   * emitted; its start is returned.
   */
  private emitCut(buf: Buffer, from: number, to: number, keepTail = false): number {
    let start = from;
    while (to - start > this.maxBytes) {
      let cut = start + this.maxBytes;
      for (let back = 0; back < 3 && ((buf[cut] as number) & 0xc0) === 0x80; back++) cut--;
      this.emit(buf, start, cut);
      start = cut;
    }
    if (!keepTail) this.emit(buf, start, to);
    return start;
  }

  private emit(buf: Buffer, from: number, to: number): void {
    const end = to > from && buf[to - 1] === CR ? to - 1 : to;
    this.onLine(buf.toString("utf8", from, end));
  }
}

/** Reads `from` to its end, calling `onLine` for every line; resolves when it ends or fails. */
export function pipeLines(
  from: Readable,
  onLine: (text: string) => void,
  maxBytes = MAX_LINE_BYTES,
): Promise<void> {
  const split = new LineSplitter(onLine, maxBytes);
  return new Promise((resolve) => {
    from.on("data", (chunk: Buffer | string) =>
      split.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk),
    );
    const done = (): void => {
      split.end();
      resolve();
    };
    from.once("end", done);
    from.once("error", done);
    from.once("close", done);
  });
}
