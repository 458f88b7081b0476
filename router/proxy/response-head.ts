// A small parser for HTTP/1.x response heads from backends: status line, headers,
// and the framing facts the forwarder needs. Strings are sliced as latin1 (byte-exact).

/** Parsed response head; one instance per exchange, reset and refilled per response. */
export class ResponseHead {
  status = 0;
  /** Status code and reason as sent, e.g. "200 OK" (what uWS's writeStatus takes). */
  statusLine = "";
  /** Header names as sent and their values, in order (parallel arrays). */
  names: string[] = [];
  values: string[] = [];
  /** Lower-cased names, parallel to `names`. */
  lower: string[] = [];
  /** -1 when absent. */
  contentLength = -1;
  chunked = false;
  /** The backend will close the connection after this response. */
  close = false;
  /**
   * Lower-cased names the Connection header lists besides close and keep-alive: hop-by-hop
   * headers of the backend's hop that are not forwarded (RFC 9110 7.6.1). Usually empty.
   */
  connectionNames: string[] = [];

  reset(): void {
    this.status = 0;
    this.statusLine = "";
    this.names.length = 0;
    this.values.length = 0;
    this.lower.length = 0;
    this.contentLength = -1;
    this.chunked = false;
    this.close = false;
    this.connectionNames.length = 0;
  }
}

/** Result of parseResponseHead when the head is not complete yet. */
export const HEAD_INCOMPLETE = 0;
/** Result of parseResponseHead for a malformed head. */
export const HEAD_MALFORMED = -1;

const CRLFCRLF = Buffer.from("\r\n\r\n");

function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 15) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * Reads a lower-cased Connection value with more than one token (or an unusual one): sets
 * `out.close`, records the other names, and returns whether keep-alive was asked for.
 */
function readConnection(v: string, out: ResponseHead): boolean {
  let keepAlive = false;
  const tokens = v.split(",");
  for (let i = 0; i < tokens.length; i++) {
    const n = (tokens[i] as string).trim();
    if (n === "close") out.close = true;
    else if (n === "keep-alive") keepAlive = true;
    else if (n !== "") out.connectionNames.push(n);
  }
  return keepAlive;
}

/** Whether the response header `lower` (a lower-cased name) is one the Connection header listed. */
function listedByConnection(head: ResponseHead, lower: string): boolean {
  const names = head.connectionNames;
  return names.length !== 0 && names.includes(lower);
}

/**
 * Response headers the router never passes on: hop-by-hop (RFC 9110 7.6.1), the body's
 * framing (the router frames what it relays) and Date (uWS writes its own).
 */
const notRelayed = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "content-length",
  "te",
  "trailer",
  "upgrade",
  "date",
]);

/** Whether the backend's response header `lower` (lower-cased) goes on to the client. */
export function relayedHeader(head: ResponseHead, lower: string): boolean {
  return !notRelayed.has(lower) && !listedByConnection(head, lower);
}

/**
 * Parses the head at the start of `buf`. Returns the number of bytes it took (head
 * and the blank line), HEAD_INCOMPLETE, or HEAD_MALFORMED.
 */
export function parseResponseHead(buf: Buffer, out: ResponseHead): number {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) return HEAD_INCOMPLETE;
  out.reset();
  // "HTTP/1.1 200 OK"
  if (end < 12 || buf[0] !== 0x48 || buf[4] !== 0x2f || buf[5] !== 0x31 || buf[6] !== 0x2e)
    return HEAD_MALFORMED;
  const minor = buf[7];
  if ((minor !== 0x30 && minor !== 0x31) || buf[8] !== 0x20) return HEAD_MALFORMED;
  let lineEnd = buf.indexOf(13, 9);
  if (lineEnd < 0 || lineEnd > end) lineEnd = end;
  out.statusLine = buf.toString("latin1", 9, lineEnd);
  const code = out.statusLine.slice(0, 3);
  if (!isDigits(code) || (out.statusLine.length > 3 && out.statusLine.charCodeAt(3) !== 32))
    return HEAD_MALFORMED;
  out.status = Number(code);
  if (out.status < 100) return HEAD_MALFORMED;
  let keepAliveAsked = false;
  let pos = lineEnd + 2;
  while (pos < end) {
    let eol = buf.indexOf(13, pos);
    if (eol < 0 || eol > end) eol = end;
    if (buf[eol + 1] !== 10) return HEAD_MALFORMED;
    const colon = buf.indexOf(58, pos);
    if (colon <= pos || colon > eol) return HEAD_MALFORMED;
    const name = buf.toString("latin1", pos, colon);
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c <= 32 || c >= 127) return HEAD_MALFORMED;
    }
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (buf[vs] === 32 || buf[vs] === 9)) vs++;
    while (ve > vs && (buf[ve - 1] === 32 || buf[ve - 1] === 9)) ve--;
    const value = buf.toString("latin1", vs, ve);
    const lower = name.toLowerCase();
    out.names.push(name);
    out.values.push(value);
    out.lower.push(lower);
    if (lower.length === 14 && lower === "content-length") {
      if (!isDigits(value)) return HEAD_MALFORMED;
      const n = Number(value);
      if (out.contentLength >= 0 && out.contentLength !== n) return HEAD_MALFORMED;
      out.contentLength = n;
    } else if (lower.length === 17 && lower === "transfer-encoding") {
      const v = value.toLowerCase();
      out.chunked = v === "chunked" || v.endsWith(",chunked") || v.endsWith(", chunked");
      if (!out.chunked) out.close = true;
    } else if (lower.length === 10 && lower === "connection") {
      const v = value.toLowerCase();
      if (v === "keep-alive") keepAliveAsked = true;
      else if (v === "close") out.close = true;
      else if (readConnection(v, out)) keepAliveAsked = true;
    }
    pos = eol + 2;
  }
  if (minor === 0x30 && !keepAliveAsked) out.close = true;
  // RFC 9112 6.3: Transfer-Encoding overrides Content-Length (and the connection is not reused).
  if (out.chunked && out.contentLength >= 0) {
    out.contentLength = -1;
    out.close = true;
  }
  return end + 4;
}

/** Chunked transfer-coding decoder; hands each data piece to `sink.onBodyPiece`. */
export interface ChunkSink {
  onBodyPiece(piece: Buffer): void;
}

const S_SIZE = 0;
const S_EXT = 1;
const S_SIZE_LF = 2;
const S_DATA = 3;
const S_DATA_CR = 4;
const S_DATA_LF = 5;
const S_TRAILER_START = 6;
const S_TRAILER_LINE = 7;
const S_TRAILER_LF = 8;
const S_END_LF = 9;

export const CHUNKED_MORE = -1;
export const CHUNKED_ERROR = -2;

export class ChunkedDecoder {
  private state = S_SIZE;
  private size = 0;
  private digits = 0;
  private remaining = 0;

  reset(): void {
    this.state = S_SIZE;
    this.size = 0;
    this.digits = 0;
    this.remaining = 0;
  }

  /**
   * Decodes `buf` from `start`. Returns the offset just past the message's end,
   * CHUNKED_MORE when it needs more bytes, or CHUNKED_ERROR.
   */
  decode(buf: Buffer, start: number, sink: ChunkSink): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case S_SIZE: {
          const c = buf[i] as number;
          let d = -1;
          if (c >= 48 && c <= 57) d = c - 48;
          else if (c >= 97 && c <= 102) d = c - 87;
          else if (c >= 65 && c <= 70) d = c - 55;
          if (d >= 0) {
            if (++this.digits > 12) return CHUNKED_ERROR;
            this.size = this.size * 16 + d;
            i++;
          } else if (this.digits === 0) return CHUNKED_ERROR;
          else if (c === 13) {
            this.state = S_SIZE_LF;
            i++;
          } else if (c === 59 || c === 32 || c === 9) {
            this.state = S_EXT;
            i++;
          } else return CHUNKED_ERROR;
          break;
        }
        case S_EXT: {
          const cr = buf.indexOf(13, i);
          if (cr < 0) return CHUNKED_MORE;
          i = cr + 1;
          this.state = S_SIZE_LF;
          break;
        }
        case S_SIZE_LF:
          if (buf[i] !== 10) return CHUNKED_ERROR;
          i++;
          this.digits = 0;
          if (this.size === 0) this.state = S_TRAILER_START;
          else {
            this.remaining = this.size;
            this.state = S_DATA;
          }
          this.size = 0;
          break;
        case S_DATA: {
          const take = Math.min(this.remaining, n - i);
          sink.onBodyPiece(buf.subarray(i, i + take));
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = S_DATA_CR;
          break;
        }
        case S_DATA_CR:
          if (buf[i] !== 13) return CHUNKED_ERROR;
          i++;
          this.state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (buf[i] !== 10) return CHUNKED_ERROR;
          i++;
          this.state = S_SIZE;
          break;
        case S_TRAILER_START:
          if (buf[i] === 13) {
            i++;
            this.state = S_END_LF;
          } else this.state = S_TRAILER_LINE;
          break;
        case S_TRAILER_LINE: {
          const cr = buf.indexOf(13, i);
          if (cr < 0) return CHUNKED_MORE;
          i = cr + 1;
          this.state = S_TRAILER_LF;
          break;
        }
        case S_TRAILER_LF:
          if (buf[i] !== 10) return CHUNKED_ERROR;
          i++;
          this.state = S_TRAILER_START;
          break;
        case S_END_LF:
          if (buf[i] !== 10) return CHUNKED_ERROR;
          this.reset();
          return i + 1;
      }
    }
    return CHUNKED_MORE;
  }
}
