// An instance's stdout and stderr as lines: split on \n, a line longer than the log line
// limit cut into pieces of that size, a last line without \n given out when the stream ends.
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";

/** Longest line handed on (the logs subject refuses longer ones). */
export const MAX_LINE_BYTES = 64 * 1024;

export function eachLine(stream: Readable, onLine: (text: string) => void, max = MAX_LINE_BYTES): void {
  const decoder = new StringDecoder("utf8");
  let rest = "";
  const emit = (line: string): void => {
    if (Buffer.byteLength(line) <= max) {
      onLine(line);
      return;
    }
    const bytes = Buffer.from(line);
    for (let i = 0; i < bytes.length; i += max) {
      // Cut on a byte limit, then back to a character boundary so no piece is invalid UTF-8.
      let end = Math.min(bytes.length, i + max);
      while (end < bytes.length && end > i && ((bytes[end] as number) & 0xc0) === 0x80) end--;
      onLine(bytes.subarray(i, end).toString("utf8"));
      if (end < i + max) i = end - max;
    }
  };
  stream.on("data", (chunk: Buffer) => {
    const text = rest + decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      emit(text.slice(start, nl));
      start = nl + 1;
    }
    rest = text.slice(start);
    if (rest.length > max) {
      emit(rest);
      rest = "";
    }
  });
  stream.on("end", () => {
    const last = rest + decoder.end();
    rest = "";
    if (last.length > 0) emit(last);
  });
  stream.on("error", () => {});
}
