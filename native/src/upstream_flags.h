// Flags of the upstream client (mirrored in native/upstream.ts RequestFlag and ResponseFlag),
// shared by its JavaScript face (upstream.cc) and the native request path (fast_abi.h).
#pragma once

#include <cstdint>

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

}  // namespace kiln::upstream
