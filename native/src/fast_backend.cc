// The kiln_native side of the router's native request path (fast_abi.h): a FastBackend per
// worker thread joins the shared route table, its own upstream client on the thread's
// loop, the access log (written here, access_log.h), and a record of finished requests
// that JavaScript reads in batches (router/proxy/fast.ts) for the metrics.
//
// Record layout (little-endian), one per event; JavaScript copies them into one Buffer it
// keeps (take), so reading them allocates nothing per request:
//   u8 type
//   1 request: u16 status, u32 host id, f64 durationMs, f64 bytes
//   2 upstream failure: u8 failure kind
//   3 retry
//   4 host name: u32 host id, u32 length, bytes (before the first request that uses the id)
//   5 host ids forgotten (more than settings.maxHostIds hosts were seen): ids start again at 0
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "access_log.h"
#include "fast_abi.h"
#include "modules.h"
#include "route_table.h"
#include "upstream.h"

namespace kiln {

namespace {

// Header values come from NATS messages: never let one end a line (router/proxy/context.ts headerSafe).
std::string HeaderSafe(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  return out;
}

constexpr size_t kMaxCachedEndpoints = 50000;

struct ViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct ViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// Size of the record starting at p (n bytes available), or 0 when it is not whole.
size_t RecordSize(const char* p, size_t n) {
  switch (p[0]) {
    case 1:
      return n >= 23 ? 23 : 0;
    case 2:
      return n >= 2 ? 2 : 0;
    case 3:
    case 5:
      return 1;
    case 4: {
      if (n < 9) return 0;
      uint32_t len;
      std::memcpy(&len, p + 5, 4);
      return n >= 9 + size_t{len} ? 9 + size_t{len} : 0;
    }
    default:
      return n;  // cannot happen: everything written here is one of the above
  }
}

class FastBackend final : public fast::Backend, public Napi::ObjectWrap<FastBackend> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FastBackend",
                       {
                           InstanceMethod<&FastBackend::Address>("address"),
                           InstanceMethod<&FastBackend::Take>("take"),
                           InstanceMethod<&FastBackend::InFlight>("inFlight"),
                           InstanceMethod<&FastBackend::Invalidate>("invalidate"),
                           InstanceMethod<&FastBackend::Close>("close"),
                       });
  }

  // new FastBackend(tableId, upstreamOptions, settings)
  explicit FastBackend(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastBackend>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsObject() || !info[2].IsObject()) {
      Napi::TypeError::New(env, "FastBackend(tableId, upstreamOptions, settings)").ThrowAsJavaScriptException();
      return;
    }
    table_ = FindRouteTable(info[0].As<Napi::Number>().Uint32Value());
    if (!table_) {
      Napi::Error::New(env, "FastBackend: no route table with this id").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object s = info[2].As<Napi::Object>();
    cfg_.forwardedProto = s.Get("forwardedProto").ToString().Utf8Value();
    cfg_.maxHeaderBytes = s.Get("maxHeaderBytes").ToNumber().Uint32Value();
    cfg_.maxAttempts = s.Get("maxAttempts").ToNumber().Uint32Value();
    Napi::Value hostIds = s.Get("maxHostIds");
    if (hostIds.IsNumber() && hostIds.As<Napi::Number>().Uint32Value() > 0) {
      maxHostIds_ = hostIds.As<Napi::Number>().Uint32Value();
    }
    cfg_.failedEndpointSkipMs = s.Get("failedEndpointSkipMs").ToNumber().DoubleValue();
    Napi::Value logFd = s.Get("accessLogFd");
    if (logFd.IsNumber() && logFd.As<Napi::Number>().Int32Value() >= 0) {
      log_ = std::make_unique<AccessLogWriter>(logFd.As<Napi::Number>().Int32Value());
    }
    Napi::Value sticky = s.Get("stickyCookies");
    if (sticky.IsArray()) {
      auto a = sticky.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) cfg_.stickyCookies.push_back(a.Get(i).ToString().Utf8Value());
    }
    Napi::Value kinds = s.Get("kindOfCode");
    if (kinds.IsArray()) {
      auto a = kinds.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value v = a.Get(i);
        cfg_.kindOfCode.push_back(v.IsNumber() ? v.As<Napi::Number>().Int32Value() : -1);
      }
    }
    Napi::Value classes = s.Get("classes");
    if (classes.IsArray()) {
      auto a = classes.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Object c = a.Get(i).ToObject();
        fast::FailureClass fc;
        fc.retriable = c.Get("retriable").ToBoolean().Value();
        fc.markFailed = c.Get("markFailed").ToBoolean().Value();
        fc.refusal.status = c.Get("status").ToString().Utf8Value();
        fc.refusal.cause = c.Get("cause").ToString().Utf8Value();
        fc.refusal.body = c.Get("body").ToString().Utf8Value();
        cfg_.classes.push_back(std::move(fc));
      }
    }
    auto kind = [&](const char* name) {
      int k = s.Get(name).ToNumber().Int32Value();
      return k >= 0 && static_cast<size_t>(k) < cfg_.classes.size() ? k : -1;
    };
    cfg_.kindResponseTimeout = kind("kindResponseTimeout");
    cfg_.kindBodyInterrupted = kind("kindBodyInterrupted");
    cfg_.kindClientAborted = kind("kindClientAborted");
    cfg_.kindConnectError = kind("kindConnectError");
    cfg_.kindBadResponse = kind("kindBadResponse");
    for (int& k : cfg_.kindOfCode) {
      if (k < 0 || static_cast<size_t>(k) >= cfg_.classes.size()) k = cfg_.kindBadResponse;
    }
    if (cfg_.kindResponseTimeout < 0 || cfg_.kindBodyInterrupted < 0 || cfg_.kindClientAborted < 0 ||
        cfg_.kindConnectError < 0 || cfg_.kindBadResponse < 0) {
      Napi::Error::New(env, "FastBackend: settings name a failure kind that is not in classes")
          .ThrowAsJavaScriptException();
      return;
    }
    client_ = CreateUpstreamClient(env, info[1].As<Napi::Object>());
  }

  ~FastBackend() override = default;

  // fast::Backend ---------------------------------------------------------------------

  uint32_t Abi() const override { return fast::kAbi; }
  const fast::Config& Settings() const override { return cfg_; }
  void SetSink(fast::ResponseSink* sink) override {
    if (client_) client_->SetSink(closed_ ? nullptr : sink);
  }

  double Select(std::string_view host, std::string_view path, double nowMs) override {
    if (closed_) return rt::kNoRoute;
    return table_->Select(host, path, {}, {}, nowMs);
  }

  fast::EndpointRef EndpointOf(double handle) override {
    auto it = endpoints_.find(handle);
    if (it != endpoints_.end()) return it->second;
    rt::EndpointCopy c;
    if (!table_->Endpoint(handle, &c)) return nullptr;
    auto ep = std::make_shared<fast::Endpoint>();
    ep->ip = c.host;
    ep->port = c.port;
    ep->label = c.host + ":" + std::to_string(c.port);
    ep->instanceId = c.instanceId;
    ep->headerBlock = "x-cf-applicationid: " + HeaderSafe(c.app) + "\r\nx-cf-instanceindex: " +
                      HeaderSafe(c.index) + "\r\nx-cf-instanceid: " + HeaderSafe(c.instanceId) + "\r\n";
    if (endpoints_.size() >= kMaxCachedEndpoints) endpoints_.clear();
    endpoints_.emplace(handle, ep);
    return ep;
  }

  void Release(double handle) override { table_->Release(handle); }
  void MarkFailed(double handle, double untilMs) override { table_->MarkFailed(handle, untilMs); }

  int32_t Request(uint32_t id, const fast::Endpoint& ep, std::string_view head, uint32_t flags) override {
    return client_->Request(id, ep.ip, ep.port, head, flags);
  }
  void Pause(uint32_t id) override { client_->Pause(id); }
  void Resume(uint32_t id) override { client_->Resume(id); }
  void Abort(uint32_t id) override { client_->Abort(id); }

  void Started() override { inFlight_++; }

  void Done(const fast::Finished& f) override {
    inFlight_--;
    uint32_t host = HostId(f.host);
    Put<uint8_t>(1);
    Put<uint16_t>(static_cast<uint16_t>(f.status));
    Put<uint32_t>(host);
    Put<double>(f.durationMs);
    Put<double>(f.bytes);
    if (log_) {
      log_->Line(f.startMs, f.host, f.method, f.target, f.status, f.bytes, f.durationMs, f.backend, f.requestId);
    }
  }

  void UpstreamFailed(int kind) override {
    Put<uint8_t>(2);
    Put<uint8_t>(static_cast<uint8_t>(kind));
  }

  void Retried() override { Put<uint8_t>(3); }

 private:
  uint32_t HostId(std::string_view host) {
    auto it = hostIds_.find(host);
    if (it != hostIds_.end()) return it->second;
    if (hostIds_.size() >= maxHostIds_) {
      hostIds_.clear();
      Put<uint8_t>(5);
    }
    auto id = static_cast<uint32_t>(hostIds_.size());
    hostIds_.emplace(std::string(host), id);
    Put<uint8_t>(4);
    Put<uint32_t>(id);
    Put<uint32_t>(static_cast<uint32_t>(host.size()));
    records_.append(host);
    return id;
  }

  template <typename T>
  void Put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    records_.append(b, sizeof(T));
  }

  // address() → this Backend's address, for app.kilnAny in the uWS binding.
  Napi::Value Address(const Napi::CallbackInfo& info) {
    auto* self = static_cast<fast::Backend*>(this);
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(self)));
  }

  // take(dst) → how many bytes of whole records were moved into the Buffer dst (0: none
  // left); call again while it returns more. Also writes the access log's buffered lines, so
  // they reach the log as soon as the JavaScript path's do.
  Napi::Value Take(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (log_) log_->Flush();
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      Napi::TypeError::New(env, "take(buffer)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto dst = info[0].As<Napi::Buffer<char>>();
    size_t cut = 0;
    while (cut < records_.size()) {
      size_t n = RecordSize(records_.data() + cut, records_.size() - cut);
      if (n == 0 || cut + n > dst.Length()) break;
      cut += n;
    }
    std::memcpy(dst.Data(), records_.data(), cut);
    records_.erase(0, cut);
    return Napi::Number::New(env, static_cast<double>(cut));
  }

  Napi::Value InFlight(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), inFlight_); }

  // The table changed in a way that may move an endpoint (a prune): drop cached details.
  Napi::Value Invalidate(const Napi::CallbackInfo& info) {
    endpoints_.clear();
    return info.Env().Undefined();
  }

  // Closes the upstream client (after the uWS app has closed: no request comes in any more).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    closed_ = true;
    if (log_) log_->Flush();
    if (client_) {
      client_->SetSink(nullptr);
      client_->Close();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<rt::Table> table_;
  std::unique_ptr<UpstreamClient> client_;
  fast::Config cfg_;
  std::unordered_map<double, fast::EndpointRef> endpoints_;
  std::string records_;
  std::unordered_map<std::string, uint32_t, ViewHash, ViewEq> hostIds_;
  size_t maxHostIds_ = 10000;
  std::unique_ptr<AccessLogWriter> log_;
  int64_t inFlight_ = 0;
  bool closed_ = false;
};

}  // namespace

void InitFastBackend(Napi::Env env, Napi::Object exports) {
  exports.Set("FastBackend", FastBackend::Define(env));
  exports.Set("fastAbi", Napi::Number::New(env, fast::kAbi));
}

}  // namespace kiln
