// The router's request path in C++, run inside uWS's own request handler: the common
// request (no body, no sticky cookie, no instance pinning, no hashing, no upgrade) is
// routed, forwarded over the worker's native keep-alive pools and answered without a
// JavaScript call. Everything else is declined untouched and goes to the JavaScript
// handler (router/worker.ts), which implements every case; this file must agree with it.
//
// Why (bench/RESULTS.md, router section): with JavaScript on every request the router spent
// ~10 µs of user CPU per tiny request against nginx's and HAProxy's ~5; crossing into
// JavaScript and back (the handler entry, header strings, the upstream call and the
// response callback) was most of it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "App.h"
#include "fast_abi.h"

namespace kiln::fast {

class FastPath final : public ResponseSink {
 public:
  using Res = uWS::HttpResponse<false>;

  explicit FastPath(Backend* backend);
  ~FastPath();
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  /** Serves the request natively, or returns false having changed nothing (JavaScript serves it). */
  bool Handle(Res* res, uWS::HttpRequest* req);

  void OnResponse(uint32_t id, int status, std::string_view head, std::string_view body, uint32_t flags,
                  int64_t length) override;
  void OnData(uint32_t id, std::string_view chunk, bool last) override;
  void OnError(uint32_t id, int32_t code) override;
  void OnDrain(uint32_t id) override;

 private:
  struct Exchange {
    FastPath* owner = nullptr;
    uint32_t slot = 0;
    uint32_t gen = 0;  // bumped when recycled: stale uWS callbacks compare it
    Res* res = nullptr;
    bool upstreamActive = false;  // a request is out on the upstream client under id `slot`
    double handle = -1;
    EndpointRef ep;
    std::string host, method, target, path, requestId;
    std::string client;  // for the access log: a trusted proxy's X-Forwarded-For entry, else the peer
    std::string head;  // request head up to the endpoint's lines
    size_t baseLen = 0;
    double startMs = 0;
    uint64_t startNs = 0;
    uint32_t attempts = 1;
    int status = 0;
    double bytesOut = 0;
    int64_t total = -1;
    bool isHead = false;
    bool replaySafe = false;  // an idempotent method (no request on this path has a body)
    bool responded = false;
    bool finished = false;
    bool upstreamPaused = false;
    bool writableHooked = false;
    std::string stash;  // unsent rest of a piece under backpressure
    uintmax_t stashOffset = 0;
  };

  Exchange* Acquire();
  /** Back to the pool (its buffers kept unless large); stale callbacks see a new gen. */
  void Recycle(Exchange* ex);
  Exchange* Active(uint32_t id);
  void Start(Exchange* ex);
  void Fail(Exchange* ex, int kind);
  void Interrupt(Exchange* ex, int kind);
  void Refuse(Exchange* ex, const Refusal& r);
  void WriteResponse(Exchange* ex, int status, std::string_view head, std::string_view body, uint32_t flags,
                     int64_t length);
  void WriteData(Exchange* ex, std::string_view chunk, bool last);
  void Relay(Exchange* ex, std::string_view piece);
  void StickyCookie(Exchange* ex, std::string_view head);
  bool OnWritable(Exchange* ex, uintmax_t offset);
  void OnAborted(Exchange* ex);
  void ClientDone(Exchange* ex);
  void Finish(Exchange* ex, int status);
  std::string_view ClientAddress(Res* res);

  Backend* const backend_;
  const Config& cfg_;
  std::vector<Exchange*> all_;
  std::vector<uint32_t> free_;
  std::string xff_;
  std::string addrBytes_;
  std::string addrText_;
  // Arguments of the write in progress inside res->cork (a lambda capturing only `this`
  // fits uWS's function object without a heap allocation).
  Exchange* cEx_ = nullptr;
  int cStatus_ = 0;
  std::string_view cHead_, cBody_;
  uint32_t cFlags_ = 0;
  int64_t cLength_ = 0;
  bool cLast_ = false;
  const Refusal* cRefusal_ = nullptr;
};

}  // namespace kiln::fast
