// The router's upstream hop in C++: keep-alive HTTP/1.1 connection pools to backends on
// this thread's libuv loop, exported to JavaScript as the `Upstream` class and to the
// native request path (fast_backend.cc) as an UpstreamClient.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "fast_abi.h"

namespace kiln {

void InitUpstream(Napi::Env env, Napi::Object exports);

/** One thread's client whose events go to a C++ ResponseSink instead of JavaScript. */
class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  virtual void SetSink(fast::ResponseSink* sink) = 0;
  /** `host` is an IP address; returns 0 or an upstream failure code (no event follows it). */
  virtual int32_t Request(uint32_t id, std::string_view host, uint32_t port, std::string_view head,
                          uint32_t flags) = 0;
  virtual void Pause(uint32_t id) = 0;
  virtual void Resume(uint32_t id) = 0;
  virtual void Abort(uint32_t id) = 0;
  /** Closes every connection; no event follows. */
  virtual void Close() = 0;
  /** Requests sent again on a new connection after a stale pooled one, so far (no event tells of them). */
  virtual double Resent() const = 0;
};

/** `options` as for `new Upstream(options, …)` in native/upstream.ts (transientBodies is implied). */
std::unique_ptr<UpstreamClient> CreateUpstreamClient(Napi::Env env, Napi::Object options);

}  // namespace kiln
