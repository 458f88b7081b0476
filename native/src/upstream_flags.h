// Flags of the upstream client (mirrored in native/upstream.ts RequestFlag and ResponseFlag)
// and its rule for sending a request again, shared by its JavaScript face (upstream.cc) and
// the native request path (fast_abi.h).
#pragma once

#include <cstdint>
#include <string_view>

namespace kiln::upstream {

// Flags of a request.
constexpr uint32_t kReqHead = 1;     // HEAD: the response has no body
constexpr uint32_t kReqEnd = 2;      // the request is complete with this call
constexpr uint32_t kReqChunked = 4;  // frame write()/end() chunks with chunked coding
constexpr uint32_t kReqClose = 8;    // do not reuse the connection afterwards

// Flags of a response.
constexpr uint32_t kResComplete = 1;   // the body handed over is the whole body
constexpr uint32_t kResChunked = 2;    // the backend used chunked coding
constexpr uint32_t kResSetCookie = 4;  // the head has a Set-Cookie field
constexpr uint32_t kResReused = 8;     // the request went over a pooled connection
constexpr uint32_t kResClose = 16;     // the connection is not kept
constexpr uint32_t kResNonAscii = 32;  // the head has obs-text bytes
constexpr uint32_t kResNoBody = 64;    // HEAD, 204 or 304: no body

// RFC 9110 §9.2.2 (router/errors.ts replaySafe): a request that may have reached the backend
// is sent again only when its method is idempotent (and it has no body, which callers check).
// Methods are case-sensitive.
inline bool IdempotentMethod(std::string_view m) {
  switch (m.size()) {
    case 3:
      return m == "GET" || m == "PUT";
    case 4:
      return m == "HEAD";
    case 5:
      return m == "TRACE";
    case 6:
      return m == "DELETE";
    case 7:
      return m == "OPTIONS";
    default:
      return false;
  }
}

// The method of a request head ("GET / HTTP/1.1\r\n…"): the bytes before the first space.
inline std::string_view HeadMethod(const char* head, size_t len) {
  size_t n = 0;
  while (n < len && n < 8 && head[n] != ' ') n++;
  return std::string_view(head, n);
}

}  // namespace kiln::upstream
