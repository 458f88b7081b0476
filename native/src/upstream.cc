// Keep-alive HTTP/1.1 client to backends on the calling thread's libuv loop (see upstream.h).
//
// Why it looks like this (bench/upstream.ts, bench/RESULTS.md):
// - One JS→C++ call starts a request (the head arrives as one string or buffer and is
//   written with uv_try_write, no stream layer) and one C++→JS call delivers a small
//   response whole: status, the validated header block ready for uWS writeStatus, body.
// - Request ids are small integers chosen by JavaScript; they index a vector here, so the
//   hot path allocates nothing but the JS values it hands over.
// - Every call into JavaScript happens from a libuv callback inside a callback scope
//   (nextTick and microtasks run as for any Node I/O callback); calls from JavaScript
//   never call back synchronously (failures found there are delivered on a 0 ms timer).
// - Teardown: close(), the wrapper's finalizer and the environment's async cleanup hook
//   all close every handle; the state is freed after the last close callback.
#include "upstream.h"

#include <uv.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fast_abi.h"
#include "upstream_flags.h"
#include "upstream_parser.h"

namespace kiln {

namespace {

using upstream::ChunkedDecoder;
using upstream::ParseResponseHead;
using upstream::ParseResult;
using upstream::ResponseHead;

// Failure codes handed to onError (mirrored in native/upstream.ts).
enum Code : int32_t {
  kOk = 0,
  kConnectRefused = 1,        // retriable, nothing sent
  kConnectTimeout = 2,        // retriable, nothing sent
  kConnectFailed = 3,         // retriable, nothing sent
  kSendFailed = 4,            // write failed before any body byte: retriable
  kClosedBeforeResponse = 5,  // backend closed/reset after the request was sent, no response byte
  kResponseTimeout = 6,       // no response head (or a body stall) within the timeout
  kBadResponse = 7,           // response head violates HTTP/1.1
  kResponseTruncated = 8,     // connection lost or bad framing inside the response body
  kPoolFull = 9,              // maxConnections to this backend reached
  kBadAddress = 10,           // host is not an IP address
  kClosed = 11,               // the Upstream was closed
  kStaleConnection = 12,      // a pooled connection closed with the request on it, not safe to resend
};

using upstream::kReqChunked;
using upstream::kReqClose;
using upstream::kReqHead;
using upstream::kReqEnd;
using upstream::kResChunked;
using upstream::kResClose;
using upstream::kResComplete;
using upstream::kResNoBody;
using upstream::kResNonAscii;
using upstream::kResReused;
using upstream::kResSetCookie;

constexpr size_t kReadBuf = 64 * 1024;
constexpr uint32_t kMaxId = 1u << 24;
constexpr size_t kSweepMin = 1024;

struct Options {
  uint64_t connectTimeoutMs = 5000;
  uint64_t headerTimeoutMs = 60000;
  uint64_t bodyTimeoutMs = 60000;
  uint64_t idleTimeoutMs = 30000;
  uint32_t maxIdle = 64;
  uint32_t maxConnections = 0;  // 0 = unlimited
  uint32_t maxHeaderBytes = 64 * 1024;
  uint32_t bufferLimit = 64 * 1024;
  uint32_t highWater = 64 * 1024;
  // Bodies are views of the read buffer, valid only during the callback (no malloc, no
  // copy for data that arrived in the current read).
  bool transientBodies = false;
  // Leave the Date field out of the head block (a uWS front writes its own Date).
  bool dropDate = false;
};

class Core;
struct Conn;

// "Date" in any letter case (the parser has already checked the name's bytes are a token).
inline bool IsDateName(const char* n) {
  return (n[0] | 0x20) == 'd' && (n[1] | 0x20) == 'a' && (n[2] | 0x20) == 't' && (n[3] | 0x20) == 'e';
}

struct Pool {
  sockaddr_storage addr;
  std::vector<Conn*> idle;
  uint32_t total = 0;
};

enum class State : uint8_t { kConnecting, kActive, kIdle, kClosing };
enum class Mode : uint8_t { kHead, kNone, kLength, kChunked, kClose };
enum class Timer : uint8_t { kNone, kConnect, kHeader, kBody, kIdle, kDeferredConnect, kDeferredWrite };

struct Conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connectReq;
  Core* core = nullptr;
  Pool* pool = nullptr;
  int handles = 0;
  State state = State::kConnecting;
  Timer timerKind = Timer::kNone;
  bool armed = false;
  uint64_t due = 0;       // loop time at which timerKind expires
  uint64_t armedDue = 0;  // loop time the libuv timer is set for
  int deferredUv = 0;
  int32_t id = -1;
  uint32_t reqFlags = 0;
  bool reused = false;
  bool reqDone = false;
  bool bodyStreamed = false;
  bool replayable = false;
  bool retried = false;
  bool paused = false;
  bool wantDrain = false;
  bool sawResponseByte = false;
  bool headersDelivered = false;
  bool writeFailed = false;
  bool keepAlive = false;
  size_t queued = 0;
  std::string pendingOut;  // request bytes written before the connection is up
  std::string replay;      // an idempotent bodiless request on a reused connection, resent once if stale
  Mode mode = Mode::kHead;
  uint64_t remaining = 0;
  ChunkedDecoder chunked;
  std::string acc;      // a response head split across reads
  std::string headOut;  // the header block handed to JavaScript
  std::string bodyAcc;  // a small Content-Length body gathered to deliver it whole
  int status = 0;
  uint32_t resFlags = 0;
  int64_t length = -1;
};

struct WriteReq {
  uv_write_t req;
  size_t len;
  char data[1];
};

struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Core {
 public:
  Core(napi_env env, const Options& opt) : env_(env), opt_(opt) {
    napi_get_uv_event_loop(env, &loop_);
    rbufCap_ = opt.bufferLimit > kReadBuf ? opt.bufferLimit : kReadBuf;
    if (!opt.transientBodies) rbuf_ = static_cast<char*>(std::malloc(rbufCap_));
    scratch_.resize(64 * 1024);
    napi_add_async_cleanup_hook(env, OnEnvCleanup, this, &hook_);
  }

  ~Core() {
    if (!opt_.transientBodies) std::free(rbuf_);
  }

  // JavaScript side ------------------------------------------------------------------

  void SetCallbacks(napi_value resource, napi_value onResponse, napi_value onData, napi_value onError,
                    napi_value onDrain) {
    napi_create_reference(env_, resource, 1, &resource_);
    napi_create_reference(env_, onResponse, 1, &onResponse_);
    napi_create_reference(env_, onData, 1, &onData_);
    napi_create_reference(env_, onError, 1, &onError_);
    napi_create_reference(env_, onDrain, 1, &onDrain_);
    napi_value name;
    napi_create_string_utf8(env_, "KilnUpstream", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env_, resource, name, &async_);
    if (opt_.transientBodies) {
      void* data = nullptr;
      napi_value ab;
      napi_create_arraybuffer(env_, rbufCap_, &data, &ab);
      napi_create_reference(env_, ab, 1, &arena_);
      rbuf_ = static_cast<char*>(data);
    }
  }

  bool closed() const { return closed_; }

  // Events go to this C++ receiver instead of JavaScript (the native request path).
  void SetSink(fast::ResponseSink* sink) { sink_ = sink; }

  int32_t Request(uint32_t id, const char* host, size_t hostLen, uint32_t port, const char* head,
                  size_t headLen, const char* body, size_t bodyLen, uint32_t flags) {
    if (closed_) return kClosed;
    Pool* pool = FindPool(host, hostLen, port);
    if (pool == nullptr) return kBadAddress;
    Conn* c = nullptr;
    if (!pool->idle.empty()) {
      c = pool->idle.back();
      pool->idle.pop_back();
      idle_--;
      StopTimer(c);
      c->state = State::kActive;
      uv_ref(reinterpret_cast<uv_handle_t*>(&c->tcp));
      uv_ref(reinterpret_cast<uv_handle_t*>(&c->timer));
    } else {
      if (opt_.maxConnections != 0 && pool->total >= opt_.maxConnections) return kPoolFull;
      c = NewConn(pool);
    }
    Attach(c, id, flags);
    // Bytes written to a pooled connection may reach the application even when the backend
    // closes it unanswered, so only what may run twice is kept to resend (RFC 9110 §9.2.2).
    c->replayable = c->reused && c->reqDone && bodyLen == 0 && (flags & kReqChunked) == 0 &&
                    upstream::IdempotentMethod(upstream::HeadMethod(head, headLen));
    if (c->replayable) c->replay.assign(head, headLen);
    uv_buf_t bufs[2] = {uv_buf_init(const_cast<char*>(head), static_cast<unsigned>(headLen)),
                        uv_buf_init(const_cast<char*>(body), static_cast<unsigned>(bodyLen))};
    if (bodyLen > 0 && (flags & kReqChunked) != 0) {
      Send(c, bufs, 1);
      WriteBody(c, body, bodyLen);
    } else {
      Send(c, bufs, bodyLen > 0 ? 2 : 1);
    }
    if (c->reqDone) {
      if ((flags & kReqChunked) != 0) SendLiteral(c, "0\r\n\r\n");
      if (c->state == State::kActive) StartTimer(c, Timer::kHeader, opt_.headerTimeoutMs);
    }
    return kOk;
  }

  // Returns whether more body may be written now (false: wait for onDrain).
  bool Write(uint32_t id, const char* data, size_t len) {
    Conn* c = Slot(id);
    if (c == nullptr || c->reqDone) return true;
    c->bodyStreamed = true;
    c->replayable = false;
    if (len > 0) WriteBody(c, data, len);
    if (c->queued < opt_.highWater) return true;
    c->wantDrain = true;
    return false;
  }

  void End(uint32_t id, const char* data, size_t len) {
    Conn* c = Slot(id);
    if (c == nullptr || c->reqDone) return;
    if (len > 0) {
      c->bodyStreamed = true;
      c->replayable = false;
      WriteBody(c, data, len);
    }
    if ((c->reqFlags & kReqChunked) != 0) SendLiteral(c, "0\r\n\r\n");
    c->reqDone = true;
    if (c->state == State::kActive && c->mode == Mode::kHead && c->timerKind == Timer::kNone) {
      StartTimer(c, Timer::kHeader, opt_.headerTimeoutMs);
    }
  }

  void Pause(uint32_t id) {
    Conn* c = Slot(id);
    if (c == nullptr || c->paused) return;
    c->paused = true;
    if (c->state == State::kActive) uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
    if (c->timerKind == Timer::kBody) StopTimer(c);
  }

  void Resume(uint32_t id) {
    Conn* c = Slot(id);
    if (c == nullptr || !c->paused) return;
    c->paused = false;
    if (c->state == State::kActive) {
      uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), OnAlloc, OnRead);
      if (c->headersDelivered && c->timerKind == Timer::kNone) {
        StartTimer(c, Timer::kBody, opt_.bodyTimeoutMs);
      }
    }
  }

  void Abort(uint32_t id) {
    Conn* c = Slot(id);
    if (c == nullptr) return;
    Detach(c);
    CloseConn(c);
  }

  // Closes every connection; no callback is made afterwards.
  void Close() {
    if (closed_) return;
    closed_ = true;
    for (Conn*& c : slots_) {
      if (c == nullptr) continue;
      Conn* conn = c;
      c = nullptr;
      conn->id = -1;
      CloseConn(conn);
    }
    active_ = 0;
    for (auto& [key, pool] : pools_) {
      while (!pool->idle.empty()) CloseConn(pool->idle.back());
      delete pool;
    }
    pools_.clear();
    if (depth_ > 0) {
      releasePending_ = true;
    } else {
      ReleaseJs();
    }
    MaybeFinish();
  }

  void WrapperGone() {
    wrapperGone_ = true;
    Close();
    MaybeFinish();
  }

  void Stats(uint32_t* out) const {
    out[0] = static_cast<uint32_t>(pools_.size());
    out[1] = connections_;
    out[2] = idle_;
    out[3] = active_;
  }
  // Requests sent again after a stale pooled connection (Retry), so far: the caller counts
  // them as it counts its own retries, since no event tells it of one.
  double resent() const { return resent_; }

  char* Scratch(size_t need) {
    if (scratch_.size() < need) scratch_.resize(need);
    return scratch_.data();
  }
  size_t ScratchSize() const { return scratch_.size(); }

  static bool ValidId(uint32_t id) { return id < kMaxId; }

  bool IdInUse(uint32_t id) const { return id < slots_.size() && slots_[id] != nullptr; }

 private:
  // Scope for calls into JavaScript from a libuv callback.
  class CallScope {
   public:
    explicit CallScope(Core* c) : c_(c) {
      napi_open_handle_scope(c->env_, &hs_);
      napi_value resource;
      napi_get_reference_value(c->env_, c->resource_, &resource);
      napi_open_callback_scope(c->env_, resource, c->async_, &cs_);
      c->depth_++;
    }
    ~CallScope() {
      napi_close_callback_scope(c_->env_, cs_);
      c_->depth_--;
      napi_close_handle_scope(c_->env_, hs_);
      if (c_->depth_ == 0 && c_->releasePending_) c_->ReleaseJs();
    }
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

   private:
    Core* c_;
    napi_handle_scope hs_;
    napi_callback_scope cs_;
  };

  void Call(napi_ref fn, size_t argc, napi_value* argv) {
    napi_value f;
    napi_value recv;
    napi_get_reference_value(env_, fn, &f);
    napi_get_undefined(env_, &recv);
    if (napi_call_function(env_, recv, f, argc, argv, nullptr) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env_, &pending);
      if (pending) {
        napi_value err;
        napi_get_and_clear_last_exception(env_, &err);
        napi_fatal_exception(env_, err);
      }
    }
  }

  void ReleaseJs() {
    releasePending_ = false;
    if (resource_ == nullptr) return;
    napi_async_destroy(env_, async_);
    napi_delete_reference(env_, onResponse_);
    napi_delete_reference(env_, onData_);
    napi_delete_reference(env_, onError_);
    napi_delete_reference(env_, onDrain_);
    napi_delete_reference(env_, resource_);
    resource_ = nullptr;
    if (arena_ != nullptr) napi_delete_reference(env_, arena_);
    arena_ = nullptr;
  }

  static void OnEnvCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
    Core* core = static_cast<Core*>(arg);
    core->hook_ = handle;
    core->envGone_ = true;
    core->Close();
    core->MaybeFinish();
  }

  // Removes the cleanup hook once closed and every handle is gone; frees when nothing refers to us.
  void MaybeFinish() {
    if (!closed_ || openHandles_ != 0) return;
    if (hook_ != nullptr) {
      napi_async_cleanup_hook_handle h = hook_;
      hook_ = nullptr;
      napi_remove_async_cleanup_hook(h);
    }
    if (wrapperGone_) delete this;
  }

  Conn* Slot(uint32_t id) const { return id < slots_.size() ? slots_[id] : nullptr; }

  Pool* FindPool(const char* host, size_t hostLen, uint32_t port) {
    char key[300];
    if (hostLen == 0 || hostLen > 255 || port == 0 || port > 65535) return nullptr;
    std::memcpy(key, host, hostLen);
    size_t n = hostLen;
    key[n++] = ':';
    char digits[8];
    int d = 0;
    for (uint32_t v = port; v != 0; v /= 10) digits[d++] = static_cast<char>('0' + v % 10);
    while (d > 0) key[n++] = digits[--d];
    std::string_view k(key, n);
    auto it = pools_.find(k);
    if (it != pools_.end()) return it->second;
    // Endpoints come and go (apps move to new ports): drop pools without connections once
    // there are many, so the map follows the live backends instead of every one ever seen.
    if (pools_.size() >= sweepAt_) {
      for (auto p = pools_.begin(); p != pools_.end();) {
        if (p->second->total == 0) {
          delete p->second;
          p = pools_.erase(p);
        } else {
          ++p;
        }
      }
      sweepAt_ = pools_.size() * 2 > kSweepMin ? pools_.size() * 2 : kSweepMin;
    }
    char ip[260];
    const char* h = host;
    size_t hl = hostLen;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
      h++;
      hl -= 2;
    }
    std::memcpy(ip, h, hl);
    ip[hl] = '\0';
    if (std::strcmp(ip, "localhost") == 0) std::strcpy(ip, "127.0.0.1");
    Pool* pool = new Pool();
    std::memset(&pool->addr, 0, sizeof(pool->addr));
    if (uv_ip4_addr(ip, static_cast<int>(port), reinterpret_cast<sockaddr_in*>(&pool->addr)) != 0 &&
        uv_ip6_addr(ip, static_cast<int>(port), reinterpret_cast<sockaddr_in6*>(&pool->addr)) != 0) {
      delete pool;
      return nullptr;
    }
    pools_.emplace(std::string(k), pool);
    return pool;
  }

  Conn* NewConn(Pool* pool) {
    Conn* c = new Conn();
    c->core = this;
    c->pool = pool;
    uv_tcp_init(loop_, &c->tcp);
    uv_timer_init(loop_, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connectReq.data = c;
    c->handles = 2;
    openHandles_ += 2;
    pool->total++;
    connections_++;
    c->state = State::kConnecting;
    int r = uv_tcp_connect(&c->connectReq, &c->tcp, reinterpret_cast<const sockaddr*>(&pool->addr), OnConnect);
    if (r < 0) {
      c->deferredUv = r;
      StartTimer(c, Timer::kDeferredConnect, 0);
    } else {
      StartTimer(c, Timer::kConnect, opt_.connectTimeoutMs);
    }
    return c;
  }

  void Attach(Conn* c, uint32_t id, uint32_t flags) {
    if (id >= slots_.size()) slots_.resize(id + 1 > slots_.size() * 2 ? id + 1 : slots_.size() * 2, nullptr);
    slots_[id] = c;
    active_++;
    c->id = static_cast<int32_t>(id);
    c->reqFlags = flags;
    c->reqDone = (flags & kReqEnd) != 0;
    c->bodyStreamed = false;
    c->retried = false;
    c->paused = false;
    c->wantDrain = false;
    c->sawResponseByte = false;
    c->headersDelivered = false;
    c->mode = Mode::kHead;
    c->acc.clear();
    c->bodyAcc.clear();
  }

  void Detach(Conn* c) {
    if (c->id < 0) return;
    slots_[static_cast<uint32_t>(c->id)] = nullptr;
    c->id = -1;
    active_--;
  }

  void CloseConn(Conn* c) {
    if (c->state == State::kClosing) return;
    if (c->state == State::kIdle) {
      auto& idle = c->pool->idle;
      for (size_t i = 0; i < idle.size(); i++) {
        if (idle[i] == c) {
          idle[i] = idle.back();
          idle.pop_back();
          idle_--;
          break;
        }
      }
    }
    c->state = State::kClosing;
    c->pool->total--;
    connections_--;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), OnClose);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), OnClose);
  }

  static void OnClose(uv_handle_t* h) {
    Conn* c = static_cast<Conn*>(h->data);
    Core* core = c->core;
    core->openHandles_--;
    if (--c->handles == 0) {
      delete c;
      core->MaybeFinish();
    }
  }

  void MakeIdle(Conn* c) {
    c->state = State::kIdle;
    c->reused = true;
    c->mode = Mode::kHead;
    c->acc.clear();
    c->bodyAcc.clear();
    c->replay.clear();
    c->wantDrain = false;
    if (c->paused) {
      c->paused = false;
      uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), OnAlloc, OnRead);
    }
    c->pool->idle.push_back(c);
    idle_++;
    // Like Node's http agent: a pooled connection alone does not keep the thread alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(&c->tcp));
    uv_unref(reinterpret_cast<uv_handle_t*>(&c->timer));
    StartTimer(c, Timer::kIdle, opt_.idleTimeoutMs);
  }

  // Timers -----------------------------------------------------------------------------

  // Deadlines are lazy: changing one only touches libuv's timer heap when the new one is
  // earlier than the armed one; a timer firing early re-arms itself (profile: three
  // start/stop pairs per request were ~2% of the proxy's CPU).
  void StartTimer(Conn* c, Timer kind, uint64_t ms) {
    // A pending deferred failure must fire; nothing may replace it.
    if (c->timerKind == Timer::kDeferredConnect || c->timerKind == Timer::kDeferredWrite) return;
    bool deferred = kind == Timer::kDeferredConnect || kind == Timer::kDeferredWrite;
    if (ms == 0 && !deferred) {
      StopTimer(c);
      return;
    }
    c->timerKind = kind;
    c->due = uv_now(loop_) + ms;
    if (!c->armed || c->armedDue > c->due) {
      uv_timer_start(&c->timer, OnTimer, ms, 0);
      c->armed = true;
      c->armedDue = c->due;
    }
  }

  void StopTimer(Conn* c) {
    if (c->timerKind == Timer::kDeferredConnect || c->timerKind == Timer::kDeferredWrite) return;
    c->timerKind = Timer::kNone;
  }

  static void OnTimer(uv_timer_t* t) {
    Conn* c = static_cast<Conn*>(t->data);
    Core* core = c->core;
    c->armed = false;
    Timer kind = c->timerKind;
    if (kind == Timer::kNone || c->state == State::kClosing) return;
    uint64_t now = uv_now(core->loop_);
    if (now < c->due) {
      uv_timer_start(&c->timer, OnTimer, c->due - now, 0);
      c->armed = true;
      c->armedDue = c->due;
      return;
    }
    c->timerKind = Timer::kNone;
    switch (kind) {
      case Timer::kConnect:
        core->Fail(c, kConnectTimeout);
        break;
      case Timer::kHeader:
      case Timer::kBody:
        core->Fail(c, kResponseTimeout);
        break;
      case Timer::kIdle:
        core->CloseConn(c);
        break;
      case Timer::kDeferredConnect:
        core->Fail(c, ConnectCode(c->deferredUv));
        break;
      case Timer::kDeferredWrite:
        core->FailIo(c, true);
        break;
      case Timer::kNone:
        break;
    }
  }

  static int32_t ConnectCode(int uvErr) {
    if (uvErr == UV_ECONNREFUSED) return kConnectRefused;
    if (uvErr == UV_ETIMEDOUT) return kConnectTimeout;
    return kConnectFailed;
  }

  // Failures ---------------------------------------------------------------------------

  void Fail(Conn* c, int32_t code) {
    int32_t id = c->id;
    Detach(c);
    CloseConn(c);
    if (id < 0 || closed_) return;
    if (sink_ != nullptr) {
      sink_->OnError(static_cast<uint32_t>(id), code);
      return;
    }
    CallScope scope(this);
    napi_value argv[2];
    napi_create_int32(env_, id, &argv[0]);
    napi_create_int32(env_, code, &argv[1]);
    Call(onError_, 2, argv);
  }

  // The connection broke (read EOF/error or write error) while a request was on it.
  void FailIo(Conn* c, bool onWrite) {
    if (c->id < 0) {
      CloseConn(c);
      return;
    }
    if (!c->sawResponseByte) {
      if (c->reused && !c->bodyStreamed) {
        // A pooled connection the backend closed as the request arrived (its idle timeout):
        // resent once on a new connection when that is safe, else reported as stale.
        if (c->replayable && !c->retried) {
          Retry(c);
          return;
        }
        Fail(c, kStaleConnection);
        return;
      }
      Fail(c, onWrite && !c->bodyStreamed ? kSendFailed : kClosedBeforeResponse);
      return;
    }
    Fail(c, c->mode == Mode::kHead ? kBadResponse : kResponseTruncated);
  }

  void Retry(Conn* c) {
    int32_t id = c->id;
    uint32_t flags = c->reqFlags;
    Pool* pool = c->pool;
    std::string bytes;
    bytes.swap(c->replay);
    Detach(c);
    CloseConn(c);
    Conn* n = NewConn(pool);
    Attach(n, static_cast<uint32_t>(id), flags);
    n->retried = true;
    n->replayable = false;
    resent_++;
    uv_buf_t b = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
    Send(n, &b, 1);
  }

  // Writing ----------------------------------------------------------------------------

  void SendLiteral(Conn* c, const char* s) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(s), static_cast<unsigned>(std::strlen(s)));
    Send(c, &b, 1);
  }

  void WriteBody(Conn* c, const char* data, size_t len) {
    if ((c->reqFlags & kReqChunked) == 0) {
      uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
      Send(c, &b, 1);
      return;
    }
    char size[24];
    int n = std::snprintf(size, sizeof(size), "%zx\r\n", len);
    uv_buf_t bufs[3] = {uv_buf_init(size, static_cast<unsigned>(n)),
                        uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len)),
                        uv_buf_init(const_cast<char*>("\r\n"), 2)};
    Send(c, bufs, 3);
  }

  void Send(Conn* c, uv_buf_t* bufs, unsigned n) {
    if (c->writeFailed || c->state == State::kClosing) return;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += bufs[i].len;
    if (c->state == State::kConnecting) {
      for (unsigned i = 0; i < n; i++) c->pendingOut.append(bufs[i].base, bufs[i].len);
      c->queued += total;
      return;
    }
    size_t written = 0;
    auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
    if (c->queued == 0) {
      int r = uv_try_write(stream, bufs, n);
      if (r >= 0) {
        written = static_cast<size_t>(r);
      } else if (r != UV_EAGAIN) {
        DeferWriteError(c, r);
        return;
      }
      if (written == total) return;
    }
    size_t rest = total - written;
    auto* w = static_cast<WriteReq*>(std::malloc(sizeof(WriteReq) + rest));
    w->len = rest;
    w->req.data = c;
    size_t skip = written;
    char* dst = w->data;
    for (unsigned i = 0; i < n; i++) {
      size_t len = bufs[i].len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      std::memcpy(dst, bufs[i].base + skip, len - skip);
      dst += len - skip;
      skip = 0;
    }
    uv_buf_t b = uv_buf_init(w->data, static_cast<unsigned>(rest));
    int r = uv_write(&w->req, stream, &b, 1, OnWrite);
    if (r < 0) {
      std::free(w);
      DeferWriteError(c, r);
      return;
    }
    c->queued += rest;
  }

  void DeferWriteError(Conn* c, int r) {
    c->writeFailed = true;
    c->deferredUv = r;
    StartTimer(c, Timer::kDeferredWrite, 0);
  }

  static void OnWrite(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    Conn* c = static_cast<Conn*>(req->data);
    size_t len = w->len;
    std::free(w);
    if (c->state == State::kClosing) return;
    Core* core = c->core;
    c->queued -= len;
    if (status < 0) {
      c->writeFailed = true;
      core->FailIo(c, true);
      return;
    }
    core->MaybeDrain(c);
  }

  void MaybeDrain(Conn* c) {
    if (!c->wantDrain || c->queued >= opt_.highWater || c->id < 0 || closed_) return;
    c->wantDrain = false;
    if (sink_ != nullptr) {
      sink_->OnDrain(static_cast<uint32_t>(c->id));
      return;
    }
    CallScope scope(this);
    napi_value argv[1];
    napi_create_int32(env_, c->id, &argv[0]);
    Call(onDrain_, 1, argv);
  }

  static void OnConnect(uv_connect_t* req, int status) {
    Conn* c = static_cast<Conn*>(req->data);
    if (status == UV_ECANCELED || c->state == State::kClosing) return;
    Core* core = c->core;
    if (status < 0) {
      core->StopTimer(c);
      core->Fail(c, ConnectCode(status));
      return;
    }
    core->StopTimer(c);
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->id < 0) {
      core->MakeIdle(c);
      return;
    }
    c->state = State::kActive;
    if (!c->paused) uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), OnAlloc, OnRead);
    std::string out;
    out.swap(c->pendingOut);
    c->queued = 0;
    if (!out.empty()) {
      uv_buf_t b = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
      core->Send(c, &b, 1);
    }
    if (c->reqDone) core->StartTimer(c, Timer::kHeader, core->opt_.headerTimeoutMs);
    core->MaybeDrain(c);
  }

  // Reading ----------------------------------------------------------------------------

  static void OnAlloc(uv_handle_t* h, size_t /*suggested*/, uv_buf_t* buf) {
    Conn* c = static_cast<Conn*>(h->data);
    buf->base = c->core->rbuf_;
    buf->len = kReadBuf;
  }

  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* /*buf*/) {
    Conn* c = static_cast<Conn*>(s->data);
    Core* core = c->core;
    if (nread == 0 || c->state == State::kClosing) return;
    if (nread < 0) {
      core->OnReadEnd(c);
      return;
    }
    if (c->state != State::kActive || c->id < 0) {
      core->CloseConn(c);  // bytes nobody asked for: the connection cannot be trusted
      return;
    }
    core->OnBytes(c, core->rbuf_, static_cast<size_t>(nread));
  }

  void OnReadEnd(Conn* c) {
    if (c->state != State::kActive || c->id < 0) {
      CloseConn(c);
      return;
    }
    if (c->mode == Mode::kClose) {
      c->keepAlive = false;
      Deliver(c, nullptr, 0, true);
      return;
    }
    FailIo(c, false);
  }

  void OnBytes(Conn* c, char* p, size_t n) {
    c->sawResponseByte = true;
    if (c->mode == Mode::kHead) {
      for (;;) {
        bool fromAcc = !c->acc.empty();
        const char* hp = p;
        size_t hn = n;
        if (fromAcc) {
          c->acc.append(p, n);
          hp = c->acc.data();
          hn = c->acc.size();
        }
        ParseResult r = ParseResponseHead(hp, hn, &head_);
        if (r == ParseResult::kNeedMore) {
          if (hn > opt_.maxHeaderBytes) {
            Fail(c, kBadResponse);
            return;
          }
          if (!fromAcc) c->acc.assign(p, n);
          return;
        }
        if (r == ParseResult::kError || head_.headLen > opt_.maxHeaderBytes) {
          Fail(c, kBadResponse);
          return;
        }
        bool interim = head_.status < 200;
        if (interim && head_.status == 101) {
          Fail(c, kBadResponse);  // upgrades are not requested through this client
          return;
        }
        if (!interim) StartBody(c, hp);
        size_t rest = hn - head_.headLen;
        if (fromAcc) {
          // The head ended inside the newest read, so the rest fits in the read buffer.
          std::memcpy(rbuf_, hp + head_.headLen, rest);
          p = rbuf_;
          c->acc.clear();
        } else {
          p += head_.headLen;
        }
        n = rest;
        if (!interim) break;
        if (n == 0) return;  // 1xx: wait for the final response
      }
    } else if (c->timerKind == Timer::kBody) {
      StartTimer(c, Timer::kBody, opt_.bodyTimeoutMs);
    }

    size_t outLen = 0;
    bool complete = false;
    bool extra = false;
    switch (c->mode) {
      case Mode::kNone:
        complete = true;
        extra = n > 0;
        break;
      case Mode::kLength: {
        size_t take = n < c->remaining ? n : static_cast<size_t>(c->remaining);
        outLen = take;
        c->remaining -= take;
        complete = c->remaining == 0;
        extra = n > take;
        break;
      }
      case Mode::kChunked: {
        int64_t used = c->chunked.Decode(p, n, &outLen);
        if (used < 0) {
          Fail(c, c->headersDelivered ? kResponseTruncated : kBadResponse);
          return;
        }
        complete = c->chunked.done();
        extra = static_cast<size_t>(used) < n;
        break;
      }
      case Mode::kClose:
        outLen = n;
        break;
      case Mode::kHead:
        break;
    }
    if (extra) c->keepAlive = false;  // bytes past the response: do not reuse
    Deliver(c, p, outLen, complete);
  }

  void StartBody(Conn* c, const char* hp) {
    const ResponseHead& h = head_;
    c->status = h.status;
    c->length = h.contentLength;
    c->keepAlive = h.minor == 1 ? !h.connClose : (h.connKeepAlive && !h.connClose);
    uint32_t flags = 0;
    if (h.setCookie) flags |= kResSetCookie;
    if (h.nonAscii) flags |= kResNonAscii;
    if (c->reused) flags |= kResReused;
    bool noBody = (c->reqFlags & kReqHead) != 0 || h.status == 204 || h.status == 304;
    if (noBody) {
      c->mode = Mode::kNone;
      flags |= kResNoBody;
    } else if (h.chunked) {
      c->mode = Mode::kChunked;
      c->chunked.Reset();
      flags |= kResChunked;
    } else if (h.contentLength >= 0) {
      c->mode = Mode::kLength;
      c->remaining = static_cast<uint64_t>(h.contentLength);
    } else {
      c->mode = Mode::kClose;
      c->keepAlive = false;
    }
    c->resFlags = flags;

    std::string& out = c->headOut;
    out.clear();
    char code[4] = {static_cast<char>('0' + h.status / 100), static_cast<char>('0' + h.status / 10 % 10),
                    static_cast<char>('0' + h.status % 10), ' '};
    out.append(code, 4);
    out.append(hp + h.reasonOff, h.reasonLen);
    for (uint32_t i = 0; i < h.fieldCount; i++) {
      const auto& f = h.fields[i];
      if (f.drop) continue;
      if (opt_.dropDate && f.nameLen == 4 && IsDateName(hp + f.nameOff)) continue;
      if (h.connTokenCount > 0 && upstream::NominatedByConnection(hp, h, hp + f.nameOff, f.nameLen)) continue;
      out.append("\r\n", 2);
      out.append(hp + f.nameOff, f.nameLen);
      out.append(": ", 2);
      out.append(hp + f.valueOff, f.valueLen);
    }
    StopTimer(c);
    if (c->mode != Mode::kNone) StartTimer(c, Timer::kBody, opt_.bodyTimeoutMs);
  }

  // Hands response data to JavaScript: the head (with the body when it is small and
  // complete) once, then body chunks. The exchange is finished before the call, so a
  // callback may start the next request on the same connection.
  void Deliver(Conn* c, const char* data, size_t len, bool complete) {
    if (closed_) return;
    if (!c->headersDelivered) {
      if (!complete && c->mode == Mode::kLength && c->length <= static_cast<int64_t>(opt_.bufferLimit)) {
        c->bodyAcc.append(data, len);
        return;
      }
      if (sink_ != nullptr) {
        DeliverHeadToSink(c, data, len, complete);
        return;
      }
      CallScope scope(this);
      napi_value argv[6];
      napi_create_int32(env_, c->id, &argv[0]);
      napi_create_int32(env_, c->status, &argv[1]);
      napi_create_string_latin1(env_, c->headOut.data(), c->headOut.size(), &argv[2]);
      if (!c->bodyAcc.empty()) {
        c->bodyAcc.append(data, len);
        Bytes(c->bodyAcc.data(), c->bodyAcc.size(), &argv[3]);
        c->bodyAcc.clear();
      } else {
        Bytes(data, len, &argv[3]);
      }
      uint32_t flags = c->resFlags;
      if (complete) flags |= kResComplete;
      if (!c->keepAlive) flags |= kResClose;
      napi_create_uint32(env_, flags, &argv[4]);
      napi_create_double(env_, static_cast<double>(c->length), &argv[5]);
      c->headersDelivered = true;
      if (complete) Finish(c);
      Call(onResponse_, 6, argv);
      return;
    }
    if (len == 0 && !complete) return;
    if (sink_ != nullptr) {
      auto id = static_cast<uint32_t>(c->id);
      if (complete) Finish(c);
      sink_->OnData(id, std::string_view(data, len), complete);
      return;
    }
    CallScope scope(this);
    napi_value argv[3];
    napi_create_int32(env_, c->id, &argv[0]);
    Bytes(data, len, &argv[1]);
    napi_get_boolean(env_, complete, &argv[2]);
    if (complete) Finish(c);
    Call(onData_, 3, argv);
  }

  void DeliverHeadToSink(Conn* c, const char* data, size_t len, bool complete) {
    auto id = static_cast<uint32_t>(c->id);
    std::string_view body(data, len);
    if (!c->bodyAcc.empty()) {
      c->bodyAcc.append(data, len);
      body = c->bodyAcc;
    }
    uint32_t flags = c->resFlags;
    if (complete) flags |= kResComplete;
    if (!c->keepAlive) flags |= kResClose;
    c->headersDelivered = true;
    // Finish() may pool the connection but leaves headOut and bodyAcc alone until its next
    // request, which cannot start before the sink returns.
    if (complete) Finish(c);
    sink_->OnResponse(id, c->status, c->headOut, body, flags, c->length);
    c->bodyAcc.clear();
  }

  // A body value: a copy in a new Buffer, or (transientBodies) a view of the read buffer.
  void Bytes(const char* data, size_t len, napi_value* out) {
    if (len == 0) {
      napi_get_null(env_, out);
      return;
    }
    if (arena_ == nullptr) {
      napi_create_buffer_copy(env_, len, data, nullptr, out);
      return;
    }
    size_t off = 0;
    if (data >= rbuf_ && data + len <= rbuf_ + rbufCap_) {
      off = static_cast<size_t>(data - rbuf_);
    } else {
      std::memcpy(rbuf_, data, len);  // gathered body (≤ bufferLimit ≤ rbufCap_)
    }
    napi_value ab;
    napi_get_reference_value(env_, arena_, &ab);
    napi_create_typedarray(env_, napi_uint8_array, len, ab, off, out);
  }

  void Finish(Conn* c) {
    StopTimer(c);
    Detach(c);
    bool reuse = c->keepAlive && c->reqDone && !c->writeFailed && (c->reqFlags & kReqClose) == 0 &&
                 c->pool->idle.size() < opt_.maxIdle;
    if (reuse) {
      MakeIdle(c);
    } else {
      CloseConn(c);
    }
  }

  napi_env env_;
  Options opt_;
  uv_loop_t* loop_ = nullptr;
  char* rbuf_ = nullptr;
  size_t rbufCap_ = kReadBuf;
  napi_ref arena_ = nullptr;
  std::vector<char> scratch_;
  ResponseHead head_;
  std::unordered_map<std::string, Pool*, KeyHash, std::equal_to<>> pools_;
  std::vector<Conn*> slots_;
  size_t sweepAt_ = kSweepMin;
  napi_ref resource_ = nullptr;
  napi_ref onResponse_ = nullptr;
  napi_ref onData_ = nullptr;
  napi_ref onError_ = nullptr;
  napi_ref onDrain_ = nullptr;
  napi_async_context async_ = nullptr;
  napi_async_cleanup_hook_handle hook_ = nullptr;
  int depth_ = 0;
  int openHandles_ = 0;
  uint32_t connections_ = 0;
  uint32_t idle_ = 0;
  uint32_t active_ = 0;
  bool closed_ = false;
  bool releasePending_ = false;
  bool wrapperGone_ = false;
  fast::ResponseSink* sink_ = nullptr;
  double resent_ = 0;
  bool envGone_ = false;
};

// Bytes of a Buffer / typed array / ArrayBuffer argument; false when it is none of those.
bool BytesOf(napi_env env, napi_value v, const char** data, size_t* len) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (is) {
    napi_typedarray_type type;
    size_t count;
    void* p;
    napi_value ab;
    size_t offset;
    napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset);
    size_t elem = 1;
    switch (type) {
      case napi_int16_array:
      case napi_uint16_array:
        elem = 2;
        break;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array:
        elem = 4;
        break;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array:
        elem = 8;
        break;
      default:
        break;
    }
    *data = static_cast<const char*>(p);
    *len = count * elem;
    return true;
  }
  napi_is_arraybuffer(env, v, &is);
  if (is) {
    void* p;
    napi_get_arraybuffer_info(env, v, &p, len);
    *data = static_cast<const char*>(p);
    return true;
  }
  return false;
}

class UpstreamWrap : public Napi::ObjectWrap<UpstreamWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Upstream",
                       {
                           InstanceMethod<&UpstreamWrap::Request>("request"),
                           InstanceMethod<&UpstreamWrap::Write>("write"),
                           InstanceMethod<&UpstreamWrap::End>("end"),
                           InstanceMethod<&UpstreamWrap::Pause>("pause"),
                           InstanceMethod<&UpstreamWrap::Resume>("resume"),
                           InstanceMethod<&UpstreamWrap::Abort>("abort"),
                           InstanceMethod<&UpstreamWrap::Close>("close"),
                           InstanceMethod<&UpstreamWrap::Stats>("stats"),
                       });
  }

  // new Upstream(options, onResponse, onData, onError, onDrain)
  explicit UpstreamWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UpstreamWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsObject() || !info[1].IsFunction() || !info[2].IsFunction() ||
        !info[3].IsFunction() || !info[4].IsFunction()) {
      Napi::TypeError::New(env, "Upstream(options, onResponse, onData, onError, onDrain)")
          .ThrowAsJavaScriptException();
      return;
    }
    core_ = new Core(env, ParseOptions(info[0].As<Napi::Object>()));
    Napi::Object resource = Napi::Object::New(env);
    core_->SetCallbacks(resource, info[1], info[2], info[3], info[4]);
  }

  ~UpstreamWrap() override {
    if (core_ != nullptr) core_->WrapperGone();
  }

  static Options ParseOptions(Napi::Object o) {
    Options opt;
    auto num = [&](const char* name, auto* field) {
      Napi::Value v = o.Get(name);
      if (v.IsNumber()) {
        double d = v.As<Napi::Number>().DoubleValue();
        if (d >= 0 && d < 4294967296.0) *field = static_cast<std::remove_reference_t<decltype(*field)>>(d);
      }
    };
    num("connectTimeoutMs", &opt.connectTimeoutMs);
    num("headerTimeoutMs", &opt.headerTimeoutMs);
    num("bodyTimeoutMs", &opt.bodyTimeoutMs);
    num("idleTimeoutMs", &opt.idleTimeoutMs);
    num("maxIdle", &opt.maxIdle);
    num("maxConnections", &opt.maxConnections);
    num("maxHeaderBytes", &opt.maxHeaderBytes);
    num("bufferLimit", &opt.bufferLimit);
    num("highWater", &opt.highWater);
    if (opt.bufferLimit > 16 * 1024 * 1024) opt.bufferLimit = 16 * 1024 * 1024;
    opt.transientBodies = o.Get("transientBodies").ToBoolean().Value();
    opt.dropDate = o.Get("dropDate").ToBoolean().Value();
    if (opt.maxHeaderBytes < 1024) opt.maxHeaderBytes = 1024;
    if (opt.maxHeaderBytes > 1024 * 1024) opt.maxHeaderBytes = 1024 * 1024;
    return opt;
  }

 private:
  static uint32_t IdArg(napi_env env, napi_value v, bool* ok) {
    uint32_t id = 0;
    *ok = napi_get_value_uint32(env, v, &id) == napi_ok && Core::ValidId(id);
    return id;
  }

  // request(id, host, port, head, body, flags) → 0 or a failure code (no callback follows)
  Napi::Value Request(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    bool ok;
    uint32_t id = IdArg(env, info[0], &ok);
    if (!ok || info.Length() < 6) return ThrowType(env, "request(id, host, port, head, body, flags)");
    napi_value out;
    if (core_->closed()) {
      napi_create_int32(env, kClosed, &out);
      return Napi::Value(env, out);
    }
    if (core_->IdInUse(id)) return ThrowType(env, "request id is in use");
    char host[256];
    size_t hostLen = 0;
    if (napi_get_value_string_utf8(env, info[1], host, sizeof(host), &hostLen) != napi_ok) {
      return ThrowType(env, "host must be a string");
    }
    uint32_t port = 0;
    uint32_t flags = 0;
    napi_get_value_uint32(env, info[2], &port);
    napi_get_value_uint32(env, info[5], &flags);
    const char* head = nullptr;
    size_t headLen = 0;
    napi_valuetype t;
    napi_typeof(env, info[3], &t);
    if (t == napi_string) {
      char* buf = core_->Scratch(0);
      size_t cap = core_->ScratchSize();
      napi_get_value_string_utf8(env, info[3], buf, cap, &headLen);
      if (headLen + 1 >= cap) {
        napi_get_value_string_utf8(env, info[3], nullptr, 0, &headLen);
        buf = core_->Scratch(headLen + 1);
        napi_get_value_string_utf8(env, info[3], buf, headLen + 1, &headLen);
      }
      head = buf;
    } else if (!BytesOf(env, info[3], &head, &headLen)) {
      return ThrowType(env, "head must be a string, a Buffer or an ArrayBuffer");
    }
    const char* body = nullptr;
    size_t bodyLen = 0;
    napi_typeof(env, info[4], &t);
    if (t != napi_null && t != napi_undefined && !BytesOf(env, info[4], &body, &bodyLen)) {
      return ThrowType(env, "body must be null, a Buffer or an ArrayBuffer");
    }
    int32_t code =
        core_->Request(id, host, hostLen < 256 ? hostLen : 0, port, head, headLen, body, bodyLen, flags);
    napi_create_int32(env, code, &out);
    return Napi::Value(env, out);
  }

  // write(id, chunk) → false when the caller should wait for onDrain(id)
  Napi::Value Write(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    bool ok;
    uint32_t id = IdArg(env, info[0], &ok);
    const char* data = nullptr;
    size_t len = 0;
    if (!ok || !BytesOf(env, info[1], &data, &len)) return ThrowType(env, "write(id, chunk)");
    napi_value out;
    napi_get_boolean(env, core_->closed() || core_->Write(id, data, len), &out);
    return Napi::Value(env, out);
  }

  // end(id, chunk?)
  Napi::Value End(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    bool ok;
    uint32_t id = IdArg(env, info[0], &ok);
    const char* data = nullptr;
    size_t len = 0;
    if (!ok) return ThrowType(env, "end(id, chunk?)");
    if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull() && !BytesOf(env, info[1], &data, &len)) {
      return ThrowType(env, "end(id, chunk?)");
    }
    if (!core_->closed()) core_->End(id, data, len);
    return info.Env().Undefined();
  }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    bool ok;
    uint32_t id = IdArg(info.Env(), info[0], &ok);
    if (ok && !core_->closed()) core_->Pause(id);
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    bool ok;
    uint32_t id = IdArg(info.Env(), info[0], &ok);
    if (ok && !core_->closed()) core_->Resume(id);
    return info.Env().Undefined();
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    bool ok;
    uint32_t id = IdArg(info.Env(), info[0], &ok);
    if (ok && !core_->closed()) core_->Abort(id);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    core_->Close();
    return info.Env().Undefined();
  }

  // stats() → { pools, connections, idle, active }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t s[4];
    core_->Stats(s);
    Napi::Object o = Napi::Object::New(env);
    o.Set("pools", s[0]);
    o.Set("connections", s[1]);
    o.Set("idle", s[2]);
    o.Set("active", s[3]);
    o.Set("resent", core_->resent());
    return o;
  }

  static Napi::Value ThrowType(napi_env env, const char* msg) {
    napi_throw_type_error(env, nullptr, msg);
    return Napi::Value();
  }

  Core* core_ = nullptr;
};

// The same client for C++ callers (fast_backend.cc), its events going to a ResponseSink.
class SinkClient final : public UpstreamClient {
 public:
  SinkClient(napi_env env, const Options& opt) : core_(new Core(env, opt)) {}
  ~SinkClient() override { core_->WrapperGone(); }
  void SetSink(fast::ResponseSink* sink) override { core_->SetSink(sink); }
  int32_t Request(uint32_t id, std::string_view host, uint32_t port, std::string_view head,
                  uint32_t flags) override {
    if (core_->closed()) return kClosed;
    if (!Core::ValidId(id) || core_->IdInUse(id)) return kBadAddress;
    return core_->Request(id, host.data(), host.size() < 256 ? host.size() : 0, port, head.data(), head.size(),
                          nullptr, 0, flags);
  }
  void Pause(uint32_t id) override {
    if (!core_->closed()) core_->Pause(id);
  }
  void Resume(uint32_t id) override {
    if (!core_->closed()) core_->Resume(id);
  }
  void Abort(uint32_t id) override {
    if (!core_->closed()) core_->Abort(id);
  }
  void Close() override { core_->Close(); }
  double Resent() const override { return core_->resent(); }

 private:
  Core* core_;
};

}  // namespace

std::unique_ptr<UpstreamClient> CreateUpstreamClient(Napi::Env env, Napi::Object options) {
  return std::make_unique<SinkClient>(env, UpstreamWrap::ParseOptions(options));
}

void InitUpstream(Napi::Env env, Napi::Object exports) {
  exports.Set("Upstream", UpstreamWrap::Define(env));
  exports.Set("upstreamAbi", Napi::Number::New(env, 1));
}

}  // namespace kiln
