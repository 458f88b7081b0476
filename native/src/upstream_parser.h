// Strict, allocation-free HTTP/1.1 response parsing for the upstream client: the
// status line and header block (RFC 9112 §4–5) and the chunked body decoder (§7.1).
// No Node-API in here; the caller owns every buffer.
// The router's JavaScript client has its own copy of these rules (router/proxy/response-head.ts):
// both must accept and refuse the same bytes, and both run the one table of cases in
// test/router/response-grammar.ts (test/router/response-grammar.test.ts). Change them together.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::upstream {

// A head with more fields is refused (MAX_FIELDS in response-head.ts).
constexpr uint32_t kMaxFields = 128;
// A chunk size of more hex digits is refused, leading zeros included: 12 digits (256 TiB)
// is what a JavaScript number holds exactly (MAX_CHUNK_SIZE_DIGITS in response-head.ts).
constexpr int kMaxChunkSizeDigits = 12;
constexpr uint32_t kMaxConnectionTokens = 8;

struct Field {
  uint32_t nameOff;
  uint32_t nameLen;
  uint32_t valueOff;
  uint32_t valueLen;
  // Hop-by-hop or framing header the proxy must not forward (RFC 9110 §7.6.1).
  bool drop;
};

struct Token {
  uint32_t off;
  uint32_t len;
};

struct ResponseHead {
  int status;
  int minor;  // HTTP/1.<minor>
  uint32_t reasonOff;
  uint32_t reasonLen;
  Field fields[kMaxFields];
  uint32_t fieldCount;
  Token connTokens[kMaxConnectionTokens];  // names listed in Connection, other than close/keep-alive
  uint32_t connTokenCount;
  int64_t contentLength;  // -1 when absent
  bool chunked;
  bool connClose;
  bool connKeepAlive;
  bool setCookie;
  bool nonAscii;  // obs-text in the reason or a kept value
  size_t headLen;  // bytes up to and including the empty line
};

enum class ParseResult { kNeedMore, kDone, kError };

// Parses one response head at the start of buf. kNeedMore: the empty line was not seen
// yet (call again with more bytes). kError: bare CR/LF, obs-fold, bad status, bad
// field name or value, more than kMaxFields fields, a Content-Length that is not
// 1*DIGIT or conflicts with another, Transfer-Encoding other than one "chunked", both
// Content-Length and Transfer-Encoding, Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1),
// or a Connection value that is not a token list.
ParseResult ParseResponseHead(const char* buf, size_t len, ResponseHead* h);

// True when the field named at [name, name+len) is listed in the head's Connection tokens.
bool NominatedByConnection(const char* buf, const ResponseHead& h, const char* name, uint32_t len);

// Decodes a chunked body in place: data bytes are moved to the front of the buffer.
class ChunkedDecoder {
 public:
  void Reset() {
    state_ = kSize;
    remaining_ = 0;
    digits_ = 0;
  }
  bool done() const { return state_ == kDone; }
  // Returns the input bytes consumed (stops right after the last chunk's final CRLF), or
  // -1 on a framing error. *outLen receives the decoded bytes now at buf[0..outLen).
  int64_t Decode(char* buf, size_t len, size_t* outLen);

 private:
  enum State : uint8_t {
    kSize,
    kSizeWs,
    kExt,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailerName,
    kTrailerLine,
    kTrailerLf,
    kEndLf,
    kDone,
  };
  State state_ = kSize;
  uint64_t remaining_ = 0;
  int digits_ = 0;
};

}  // namespace kiln::upstream
