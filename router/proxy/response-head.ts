// A strict parser for HTTP/1.x response heads from backends (status line, headers, the
// framing facts the forwarder needs) and the chunked decoder. Strings are sliced as latin1
// (byte-exact). Its rules are the native client's (native/src/upstream_parser.cc) and both
// run the one table of cases in test/router/response-grammar.ts.

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
  /**
   * The status line or a value holds obs-text (bytes 0x80-0xFF, sliced as latin1): written as
   * latin1 bytes, since uWS would send a string's characters as UTF-8.
   */
  nonAscii = false;

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
    this.nonAscii = false;
  }
}

/** Result of parseResponseHead when the head is not complete yet. */
export const HEAD_INCOMPLETE = 0;
/** Result of parseResponseHead for a malformed head. */
export const HEAD_MALFORMED = -1;

// The native client must accept and refuse the same bytes: change the rules below together
// with upstream_parser.cc.

/** Largest response head accepted (the native client's maxHeaderBytes default). */
export const MAX_RESPONSE_HEAD = 64 * 1024;
/** A head with more fields is refused (kMaxFields). */
export const MAX_FIELDS = 128;
/** A chunk size with more hex digits (leading zeros too) is refused: 12 stay exact in a number. */
export const MAX_CHUNK_SIZE_DIGITS = 12;

const CRLFCRLF = Buffer.from("\r\n\r\n");

/** tchar of RFC 9110 5.6.2, by byte (1 = allowed in a field name or token). */
const tchar = new Uint8Array(256);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9]/.test(ch) || "!#$%&'*+-.^_`|~".includes(ch)) tchar[c] = 1;
}

/** field-vchar, SP or HTAB (obs-text included): no CTL, no DEL. */
function isValueByte(c: number): boolean {
  return c === 9 || (c >= 32 && c !== 127);
}

function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 15) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Whether buf[from, to) is `lit` (lower-case ASCII) in any letter case. */
function equalsLower(buf: Buffer, from: number, to: number, lit: string): boolean {
  if (to - from !== lit.length) return false;
  for (let i = 0; i < lit.length; i++)
    if (((buf[from + i] as number) | 0x20) !== lit.charCodeAt(i)) return false;
  return true;
}

const CONN_BAD = -1;
const CONN_KEEP_ALIVE = 1;

/**
 * Reads a Connection value, buf[from, to): a comma list of tokens. Sets `out.close`, records
 * the other names lower-cased, and returns CONN_KEEP_ALIVE when keep-alive was listed, 0, or
 * CONN_BAD for a byte that is neither token, OWS nor comma. Only the unusual names allocate.
 */
function readConnection(buf: Buffer, from: number, to: number, out: ResponseHead): number {
  let result = 0;
  let i = from;
  while (i < to) {
    let c = buf[i] as number;
    while (i < to && (c === 32 || c === 9 || c === 44)) c = buf[++i] as number;
    const start = i;
    while (i < to && tchar[buf[i] as number] === 1) i++;
    if (i === start) {
      if (i < to) return CONN_BAD;
      break;
    }
    const stop = i;
    while (i < to && (buf[i] === 32 || buf[i] === 9)) i++;
    if (i < to && buf[i] !== 44) return CONN_BAD;
    if (equalsLower(buf, start, stop, "close")) out.close = true;
    else if (equalsLower(buf, start, stop, "keep-alive")) result = CONN_KEEP_ALIVE;
    else out.connectionNames.push(buf.toString("latin1", start, stop).toLowerCase());
  }
  return result;
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
 * and the blank line), HEAD_INCOMPLETE, or HEAD_MALFORMED: a bare CR or LF, obs-fold, a
 * bad status line, field name or value, more than MAX_FIELDS fields, a Content-Length that
 * is not 1*DIGIT or conflicts with another, Transfer-Encoding other than one "chunked",
 * both Content-Length and Transfer-Encoding, Transfer-Encoding in HTTP/1.0 (RFC 9112 6.1),
 * or a Connection value that is not a token list.
 */
export function parseResponseHead(buf: Buffer, out: ResponseHead): number {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) return HEAD_INCOMPLETE;
  out.reset();
  // "HTTP/1.1 200 OK": buf[end] is a CR, so every scan below stops by `end` at the latest.
  if (
    end < 12 ||
    buf[0] !== 0x48 ||
    buf[1] !== 0x54 ||
    buf[2] !== 0x54 ||
    buf[3] !== 0x50 ||
    buf[4] !== 0x2f ||
    buf[5] !== 0x31 ||
    buf[6] !== 0x2e
  )
    return HEAD_MALFORMED;
  const minor = buf[7];
  if ((minor !== 0x30 && minor !== 0x31) || buf[8] !== 0x20) return HEAD_MALFORMED;
  const d0 = (buf[9] as number) - 48;
  const d1 = (buf[10] as number) - 48;
  const d2 = (buf[11] as number) - 48;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return HEAD_MALFORMED;
  let i = 12;
  if (buf[i] === 32) i++;
  else if (buf[i] !== 13) return HEAD_MALFORMED;
  let high = 0;
  for (let c = buf[i] as number; c !== 13; c = buf[++i] as number) {
    if (!isValueByte(c)) return HEAD_MALFORMED;
    high |= c;
  }
  if (buf[i + 1] !== 10) return HEAD_MALFORMED;
  out.status = d0 * 100 + d1 * 10 + d2;
  out.statusLine = buf.toString("latin1", 9, i);
  let keepAliveAsked = false;
  let sawTe = false;
  let pos = i + 2;
  while (pos <= end) {
    // Field name: 1*tchar directly followed by ':' (no obs-fold, no whitespace before ':').
    let colon = pos;
    while (tchar[buf[colon] as number] === 1) colon++;
    if (colon === pos || buf[colon] !== 58) return HEAD_MALFORMED;
    let vs = colon + 1;
    while (buf[vs] === 32 || buf[vs] === 9) vs++;
    let eol = vs;
    for (let c = buf[vs] as number; c !== 13; c = buf[++eol] as number) {
      if (!isValueByte(c)) return HEAD_MALFORMED;
      high |= c;
    }
    if (buf[eol + 1] !== 10) return HEAD_MALFORMED;
    let ve = eol;
    while (ve > vs && (buf[ve - 1] === 32 || buf[ve - 1] === 9)) ve--;
    if (out.names.length === MAX_FIELDS) return HEAD_MALFORMED;
    const name = buf.toString("latin1", pos, colon);
    const value = buf.toString("latin1", vs, ve);
    const lower = name.toLowerCase();
    out.names.push(name);
    out.values.push(value);
    out.lower.push(lower);
    if (lower.length === 14 && lower === "content-length") {
      if (!isDigits(value)) return HEAD_MALFORMED;
      const n = Number(value);
      // Repeats are accepted when they agree (RFC 9110 8.6); a list ("5, 5") is not 1*DIGIT.
      if (out.contentLength >= 0 && out.contentLength !== n) return HEAD_MALFORMED;
      out.contentLength = n;
    } else if (lower.length === 17 && lower === "transfer-encoding") {
      // Only plain "chunked": another coding would reach the client undeclared.
      if (sawTe || !equalsLower(buf, vs, ve, "chunked")) return HEAD_MALFORMED;
      sawTe = true;
      out.chunked = true;
    } else if (lower.length === 10 && lower === "connection") {
      const r = readConnection(buf, vs, ve, out);
      if (r === CONN_BAD) return HEAD_MALFORMED;
      if (r === CONN_KEEP_ALIVE) keepAliveAsked = true;
    }
    pos = eol + 2;
  }
  // RFC 9112 6.3: with both, or with Transfer-Encoding in HTTP/1.0 (6.1), the framing is
  // ambiguous and a proxy cannot relay it safely.
  if (sawTe && (out.contentLength >= 0 || minor === 0x30)) return HEAD_MALFORMED;
  if (minor === 0x30 && !keepAliveAsked) out.close = true;
  out.nonAscii = high >= 0x80;
  return end + 4;
}

/** Receives the data pieces of a chunked body. */
export interface ChunkSink {
  onBodyPiece(piece: Buffer): void;
}

const S_SIZE = 0;
const S_SIZE_WS = 1;
const S_EXT = 2;
const S_SIZE_LF = 3;
const S_DATA = 4;
const S_DATA_CR = 5;
const S_DATA_LF = 6;
const S_TRAILER_START = 7;
const S_TRAILER_NAME = 8;
const S_TRAILER_LINE = 9;
const S_TRAILER_LF = 10;
const S_END_LF = 11;

export const CHUNKED_MORE = -1;
export const CHUNKED_ERROR = -2;

/**
 * Chunked transfer-coding decoder (RFC 9112 7.1); hands each data piece to `sink.onBodyPiece`.
 * Same rules as the native ChunkedDecoder (native/src/upstream_parser.cc).
 */
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
            if (++this.digits > MAX_CHUNK_SIZE_DIGITS) return CHUNKED_ERROR;
            this.size = this.size * 16 + d;
          } else if (this.digits === 0) return CHUNKED_ERROR;
          else if (c === 13) this.state = S_SIZE_LF;
          else if (c === 59) this.state = S_EXT;
          else if (c === 32 || c === 9) this.state = S_SIZE_WS;
          else return CHUNKED_ERROR;
          i++;
          break;
        }
        case S_SIZE_WS: {
          const c = buf[i] as number;
          if (c === 59) this.state = S_EXT;
          else if (c === 13) this.state = S_SIZE_LF;
          else if (c !== 32 && c !== 9) return CHUNKED_ERROR;
          i++;
          break;
        }
        case S_EXT: {
          // Extensions are checked for stray bytes and dropped.
          const c = buf[i] as number;
          if (c === 13) this.state = S_SIZE_LF;
          else if (!isValueByte(c)) return CHUNKED_ERROR;
          i++;
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
        case S_TRAILER_START: {
          // Trailer fields (name ":" value) are checked and dropped.
          const c = buf[i] as number;
          if (c === 13) this.state = S_END_LF;
          else if (tchar[c] === 1) this.state = S_TRAILER_NAME;
          else return CHUNKED_ERROR;
          i++;
          break;
        }
        case S_TRAILER_NAME: {
          const c = buf[i] as number;
          if (c === 58) this.state = S_TRAILER_LINE;
          else if (tchar[c] !== 1) return CHUNKED_ERROR;
          i++;
          break;
        }
        case S_TRAILER_LINE: {
          const c = buf[i] as number;
          if (c === 13) this.state = S_TRAILER_LF;
          else if (!isValueByte(c)) return CHUNKED_ERROR;
          i++;
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
