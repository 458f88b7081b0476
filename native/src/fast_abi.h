// The interface between the two addons of the router's native request path:
// - kiln_native (this folder) owns the route table and the upstream client and implements
//   Backend: select an endpoint, start a request on this thread's keep-alive pools, count
//   what finished so JavaScript can log it.
// - kiln_uws (native/fast_path.cc linked into the uWS binding) owns client connections and
//   implements ResponseSink: it reads a request in uWS's own handler, asks Backend, and
//   writes the response, without a JavaScript call on the common path.
// Both addons are built together by one binding.gyp with one compiler, so the interface is
// plain C++ (virtual calls, std::string). JavaScript hands the address of the Backend's
// Handshake from one addon to the other (as a BigInt, which JavaScript can get wrong): kiln_uws
// reads its tag before any virtual call, so a wrong value or a stale build of either side is
// an error, not a call through a foreign vtable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "upstream_flags.h"

namespace kiln::fast {

constexpr uint32_t kAbi = 5;
/** "KILNFAST", the first 8 bytes of every Handshake. */
constexpr uint64_t kMagic = 0x4b494c4e46415354ull;

/** What a request needs of one endpoint, made once per route-table handle. */
struct Endpoint {
  std::string ip;
  uint32_t port = 0;
  /** x-cf-applicationid, x-cf-instanceindex and x-cf-instanceid lines of the upstream head. */
  std::string headerBlock;
  /** "host:port", for the access log. */
  std::string label;
  /** private_instance_id ("" when the endpoint registered none): the sticky-session cookie value. */
  std::string instanceId;
};
using EndpointRef = std::shared_ptr<const Endpoint>;

/** One of the router's own error answers (router/errors.ts Refusal). */
struct Refusal {
  std::string status;  // "502 Bad Gateway"
  std::string cause;   // X-Kiln-Router-Error
  std::string body;
};

/** router/errors.ts failureClasses, indexed by failure kind. */
struct FailureClass {
  bool retriable = false;
  /** Retried only for a request that may run twice: idempotent, no body (all on this path). */
  bool idempotentOnly = false;
  bool markFailed = false;
  Refusal refusal;
};

/** The router settings the native path applies (router/config.ts). */
/** A trusted proxy network (router/handlers/forwarded.ts TrustedNet): 4 or 16 bytes and a prefix. */
struct TrustedNet {
  std::string bytes;
  uint32_t prefix = 0;
};

struct Config {
  /** X-Forwarded-Proto of the router's listener; a trusted proxy's own value is kept instead. */
  std::string forwardedProto;
  std::vector<TrustedNet> trustedProxies;
  uint32_t maxHeaderBytes = 0;
  uint32_t maxAttempts = 3;
  double failedEndpointSkipMs = 30000;
  std::vector<std::string> stickyCookies;
  /** Upstream client failure code → failure kind. */
  std::vector<int> kindOfCode;
  std::vector<FailureClass> classes;
  int kindResponseTimeout = 0;
  int kindBodyInterrupted = 0;
  int kindClientAborted = 0;
  int kindConnectError = 0;
  int kindBadResponse = 0;
};

// Flags of ResponseSink::OnResponse and Backend::Request are the upstream client's.
using upstream::kReqEnd;
using upstream::kReqHead;
using upstream::kResComplete;
using upstream::kResNoBody;
using upstream::kResSetCookie;

/** Receives the upstream client's events for requests started through Backend::Request. */
class ResponseSink {
 public:
  /** `head` is "200 OK\r\nName: value…" (ready for uWS writeStatus); body valid during the call. */
  virtual void OnResponse(uint32_t id, int status, std::string_view head, std::string_view body, uint32_t flags,
                          int64_t length) = 0;
  virtual void OnData(uint32_t id, std::string_view chunk, bool last) = 0;
  virtual void OnError(uint32_t id, int32_t code) = 0;
  virtual void OnDrain(uint32_t id) = 0;

 protected:
  ~ResponseSink() = default;
};

/** A finished request, for the metrics and the access log (router/proxy/exchange-base.ts finish). */
struct Finished {
  double startMs;
  double durationMs;
  double bytes;
  int status;  // 0: the client went away first
  std::string_view host, method, target, backend, requestId, client;
};

class Backend;

/**
 * What the address handed to kiln_uws points at: a plain record owned by the Backend (not
 * the Backend itself, whose first bytes are its vtable pointer). kiln_uws checks magic, abi
 * and size before it uses `backend`.
 */
struct Handshake {
  uint64_t magic = kMagic;
  uint32_t abi = kAbi;
  uint32_t size = sizeof(Handshake);
  Backend* backend = nullptr;
};

class Backend {
 public:
  virtual const Config& Settings() const = 0;
  /** The upstream client calls `sink` from now on (nullptr: stop). */
  virtual void SetSink(ResponseSink* sink) = 0;

  // Route table (router/proxy/context.ts). Handles are ≥ 0; negative values are SelectError codes.
  virtual double Select(std::string_view host, std::string_view path, double nowMs) = 0;
  // Cache warming, in request order (each only starts loads; none changes anything):
  // Prefetch when the request's host is known, PrefetchRoute(its token) a little later,
  // Select after both; PrefetchCount when the response arrives, before Done.
  virtual uint64_t Prefetch(std::string_view host) = 0;
  virtual void PrefetchRoute(uint64_t token) = 0;
  virtual void PrefetchCount(std::string_view host) = 0;
  virtual EndpointRef EndpointOf(double handle) = 0;
  virtual void Release(double handle) = 0;
  virtual void MarkFailed(double handle, double untilMs) = 0;

  // Upstream client: returns 0 or a failure code (no event follows it).
  virtual int32_t Request(uint32_t id, const Endpoint& ep, std::string_view head, uint32_t flags) = 0;
  virtual void Pause(uint32_t id) = 0;
  virtual void Resume(uint32_t id) = 0;
  virtual void Abort(uint32_t id) = 0;

  // Accounting, read by JavaScript in batches (router/proxy/fast.ts).
  virtual void Started() = 0;
  virtual void Done(const Finished& f) = 0;
  virtual void UpstreamFailed(int kind) = 0;
  virtual void Retried() = 0;

 protected:
  ~Backend() = default;
};

}  // namespace kiln::fast
