// Splits a process's output into lines as it arrives, so each line of a staging log reaches
// its listener live; a line longer than the limit is passed on in pieces of that size.
import { StringDecoder } from "node:string_decoder";

export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private pending = "";

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = 64 * 1024,
  ) {}

  push(chunk: Buffer | string): void {
    this.pending += typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (let nl = this.pending.indexOf("\n", start); nl >= 0; nl = this.pending.indexOf("\n", start)) {
      this.emit(this.pending.slice(start, nl));
      start = nl + 1;
    }
    this.pending = this.pending.slice(start);
    while (this.pending.length >= this.maxLine) {
      this.onLine(this.pending.slice(0, this.maxLine));
      this.pending = this.pending.slice(this.maxLine);
    }
  }

  /** Passes on what is left after the stream ended (a last line without a newline). */
  end(): void {
    this.pending += this.decoder.end();
    if (this.pending !== "") this.emit(this.pending);
    this.pending = "";
  }

  private emit(line: string): void {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    for (let i = 0; i < text.length || i === 0; i += this.maxLine) {
      this.onLine(text.slice(i, i + this.maxLine));
    }
  }
}
