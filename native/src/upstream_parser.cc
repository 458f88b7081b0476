// Strict HTTP/1.1 response head parser and in-place chunked decoder (see upstream_parser.h).
// Everything a backend sends is untrusted: anything outside RFC 9112's grammar is an
// error, so a response that reaches a client was fully validated here. The JavaScript
// client's copy of the same rules is router/proxy/response-head.ts; the shared table of
// cases both must pass is test/router/response-grammar.ts.
#include "upstream_parser.h"

#include <cstring>

namespace kiln::upstream {

namespace {

// tchar of RFC 9110 §5.6.2.
constexpr bool IsTchar(unsigned char c) {
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= '0' && c <= '9') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

struct TcharTable {
  bool t[256];
  constexpr TcharTable() : t() {
    for (int i = 0; i < 256; i++) t[i] = IsTchar(static_cast<unsigned char>(i));
  }
};
constexpr TcharTable kTchar;

// field-vchar / SP / HTAB (obs-text allowed, flagged by the caller).
inline bool IsValueByte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

inline unsigned char Lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

bool EqualsLower(const char* s, uint32_t len, const char* lit, uint32_t litLen) {
  if (len != litLen) return false;
  for (uint32_t i = 0; i < len; i++) {
    if (Lower(static_cast<unsigned char>(s[i])) != static_cast<unsigned char>(lit[i])) return false;
  }
  return true;
}

template <size_t N>
inline bool Is(const char* s, uint32_t len, const char (&lit)[N]) {
  return EqualsLower(s, len, lit, N - 1);
}

// Splits a Connection value into tokens; close/keep-alive set flags, others are recorded.
bool ParseConnection(const char* buf, uint32_t off, uint32_t len, ResponseHead* h) {
  uint32_t i = off;
  const uint32_t end = off + len;
  while (i < end) {
    while (i < end && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == ',')) i++;
    uint32_t start = i;
    while (i < end && kTchar.t[static_cast<unsigned char>(buf[i])]) i++;
    uint32_t tlen = i - start;
    if (tlen == 0) {
      if (i < end) return false;  // a byte that is neither token, OWS nor comma
      break;
    }
    while (i < end && (buf[i] == ' ' || buf[i] == '\t')) i++;
    if (i < end && buf[i] != ',') return false;
    if (Is(buf + start, tlen, "close")) {
      h->connClose = true;
    } else if (Is(buf + start, tlen, "keep-alive")) {
      h->connKeepAlive = true;
    } else if (h->connTokenCount < kMaxConnectionTokens) {
      h->connTokens[h->connTokenCount++] = Token{start, tlen};
    }
  }
  return true;
}

}  // namespace

bool NominatedByConnection(const char* buf, const ResponseHead& h, const char* name, uint32_t len) {
  for (uint32_t i = 0; i < h.connTokenCount; i++) {
    const Token& t = h.connTokens[i];
    if (t.len != len) continue;
    bool same = true;
    for (uint32_t j = 0; j < len; j++) {
      if (Lower(static_cast<unsigned char>(buf[t.off + j])) != Lower(static_cast<unsigned char>(name[j]))) {
        same = false;
        break;
      }
    }
    if (same) return true;
  }
  return false;
}

ParseResult ParseResponseHead(const char* buf, size_t len, ResponseHead* h) {
  const auto* b = reinterpret_cast<const unsigned char*>(buf);
  // "HTTP/1.x SP DDD" is 12 bytes; the earliest complete head is 16 with CRLF CRLF.
  if (len < 12) {
    if (len > 0 && std::memcmp(buf, "HTTP/1.", len < 7 ? len : 7) != 0) return ParseResult::kError;
    return ParseResult::kNeedMore;
  }
  if (std::memcmp(buf, "HTTP/1.", 7) != 0) return ParseResult::kError;
  if (b[7] != '0' && b[7] != '1') return ParseResult::kError;
  if (b[8] != ' ') return ParseResult::kError;
  if (b[9] < '1' || b[9] > '5' || b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9') {
    return ParseResult::kError;
  }
  h->minor = b[7] - '0';
  h->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
  h->fieldCount = 0;
  h->connTokenCount = 0;
  h->contentLength = -1;
  h->chunked = false;
  h->connClose = false;
  h->connKeepAlive = false;
  h->setCookie = false;
  h->nonAscii = false;
  bool sawTe = false;

  size_t i = 12;
  if (i >= len) return ParseResult::kNeedMore;
  if (b[i] == ' ') {
    i++;
  } else if (b[i] != '\r') {
    return ParseResult::kError;
  }
  h->reasonOff = static_cast<uint32_t>(i);
  for (;; i++) {
    if (i >= len) return ParseResult::kNeedMore;
    unsigned char c = b[i];
    if (c == '\r') break;
    if (!IsValueByte(c)) return ParseResult::kError;
    if (c >= 0x80) h->nonAscii = true;
  }
  h->reasonLen = static_cast<uint32_t>(i - h->reasonOff);
  if (i + 1 >= len) return ParseResult::kNeedMore;
  if (b[i + 1] != '\n') return ParseResult::kError;
  i += 2;

  for (;;) {
    if (i >= len) return ParseResult::kNeedMore;
    if (b[i] == '\r') {
      if (i + 1 >= len) return ParseResult::kNeedMore;
      if (b[i + 1] != '\n') return ParseResult::kError;
      h->headLen = i + 2;
      break;
    }
    // Field name: 1*tchar directly followed by ':' (no obs-fold, no whitespace before ':').
    size_t nameStart = i;
    while (i < len && kTchar.t[b[i]]) i++;
    if (i >= len) return ParseResult::kNeedMore;
    if (i == nameStart || b[i] != ':') return ParseResult::kError;
    uint32_t nameLen = static_cast<uint32_t>(i - nameStart);
    i++;
    while (i < len && (b[i] == ' ' || b[i] == '\t')) i++;
    size_t valueStart = i;
    bool valueNonAscii = false;
    for (;; i++) {
      if (i >= len) return ParseResult::kNeedMore;
      unsigned char c = b[i];
      if (c == '\r') break;
      if (!IsValueByte(c)) return ParseResult::kError;
      if (c >= 0x80) valueNonAscii = true;
    }
    size_t valueEnd = i;
    while (valueEnd > valueStart && (b[valueEnd - 1] == ' ' || b[valueEnd - 1] == '\t')) valueEnd--;
    if (i + 1 >= len) return ParseResult::kNeedMore;
    if (b[i + 1] != '\n') return ParseResult::kError;
    i += 2;
    if (h->fieldCount == kMaxFields) return ParseResult::kError;

    Field& f = h->fields[h->fieldCount++];
    f.nameOff = static_cast<uint32_t>(nameStart);
    f.nameLen = nameLen;
    f.valueOff = static_cast<uint32_t>(valueStart);
    f.valueLen = static_cast<uint32_t>(valueEnd - valueStart);
    f.drop = false;
    const char* name = buf + nameStart;
    const char* value = buf + valueStart;
    switch (nameLen) {
      case 2:
        f.drop = Is(name, nameLen, "te");
        break;
      case 7:
        f.drop = Is(name, nameLen, "trailer") || Is(name, nameLen, "upgrade");
        break;
      case 10:
        if (Is(name, nameLen, "connection")) {
          f.drop = true;
          if (!ParseConnection(buf, f.valueOff, f.valueLen, h)) return ParseResult::kError;
        } else if (Is(name, nameLen, "keep-alive")) {
          f.drop = true;
        } else if (Is(name, nameLen, "set-cookie")) {
          h->setCookie = true;
        }
        break;
      case 14:
        if (Is(name, nameLen, "content-length")) {
          f.drop = true;
          if (f.valueLen == 0 || f.valueLen > 15) return ParseResult::kError;
          int64_t n = 0;
          for (uint32_t k = 0; k < f.valueLen; k++) {
            unsigned char c = static_cast<unsigned char>(value[k]);
            if (c < '0' || c > '9') return ParseResult::kError;
            n = n * 10 + (c - '0');
          }
          if (h->contentLength >= 0 && h->contentLength != n) return ParseResult::kError;
          h->contentLength = n;
        }
        break;
      case 16:
        f.drop = Is(name, nameLen, "proxy-connection");
        break;
      case 17:
        if (Is(name, nameLen, "transfer-encoding")) {
          f.drop = true;
          // Only plain "chunked": another coding would reach the client undeclared.
          if (sawTe || !Is(value, f.valueLen, "chunked")) return ParseResult::kError;
          sawTe = true;
          h->chunked = true;
        }
        break;
      default:
        break;
    }
    if (valueNonAscii && !f.drop) h->nonAscii = true;
  }
  // RFC 9112 §6.3: with both, or with Transfer-Encoding in HTTP/1.0 (§6.1), the framing is
  // ambiguous and a proxy cannot relay it safely.
  if (sawTe && (h->contentLength >= 0 || h->minor == 0)) return ParseResult::kError;
  return ParseResult::kDone;
}

int64_t ChunkedDecoder::Decode(char* buf, size_t len, size_t* outLen) {
  size_t in = 0;
  size_t out = 0;
  while (in < len) {
    unsigned char c = static_cast<unsigned char>(buf[in]);
    switch (state_) {
      case kSize: {
        int v;
        if (c >= '0' && c <= '9') {
          v = c - '0';
        } else if (c >= 'a' && c <= 'f') {
          v = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
          v = c - 'A' + 10;
        } else {
          if (digits_ == 0) return -1;
          if (c == '\r') {
            state_ = kSizeLf;
          } else if (c == ';') {
            state_ = kExt;
          } else if (c == ' ' || c == '\t') {
            state_ = kSizeWs;
          } else {
            return -1;
          }
          in++;
          break;
        }
        if (++digits_ > kMaxChunkSizeDigits) return -1;
        remaining_ = remaining_ * 16 + static_cast<uint64_t>(v);
        in++;
        break;
      }
      case kSizeWs:
        if (c == ';') {
          state_ = kExt;
        } else if (c == '\r') {
          state_ = kSizeLf;
        } else if (c != ' ' && c != '\t') {
          return -1;
        }
        in++;
        break;
      case kExt:
        if (c == '\r') {
          state_ = kSizeLf;
        } else if (!IsValueByte(c)) {
          return -1;
        }
        in++;
        break;
      case kSizeLf:
        if (c != '\n') return -1;
        in++;
        digits_ = 0;
        state_ = remaining_ == 0 ? kTrailerStart : kData;
        break;
      case kData: {
        size_t n = len - in;
        if (n > remaining_) n = static_cast<size_t>(remaining_);
        if (out != in) std::memmove(buf + out, buf + in, n);
        out += n;
        in += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = kDataCr;
        break;
      }
      case kDataCr:
        if (c != '\r') return -1;
        in++;
        state_ = kDataLf;
        break;
      case kDataLf:
        if (c != '\n') return -1;
        in++;
        state_ = kSize;
        break;
      case kTrailerStart:
        if (c == '\r') {
          state_ = kEndLf;
        } else if (kTchar.t[c]) {
          state_ = kTrailerName;  // trailers are validated and dropped
        } else {
          return -1;
        }
        in++;
        break;
      case kTrailerName:
        if (c == ':') {
          state_ = kTrailerLine;
        } else if (!kTchar.t[c]) {
          return -1;
        }
        in++;
        break;
      case kTrailerLine:
        if (c == '\r') {
          state_ = kTrailerLf;
        } else if (!IsValueByte(c)) {
          return -1;
        }
        in++;
        break;
      case kTrailerLf:
        if (c != '\n') return -1;
        in++;
        state_ = kTrailerStart;
        break;
      case kEndLf:
        if (c != '\n') return -1;
        in++;
        state_ = kDone;
        *outLen = out;
        return static_cast<int64_t>(in);
      case kDone:
        *outLen = out;
        return static_cast<int64_t>(in);
    }
  }
  *outLen = out;
  return static_cast<int64_t>(in);
}

}  // namespace kiln::upstream
