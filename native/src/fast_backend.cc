// The kiln_native side of the router's native request path (fast_abi.h): a FastBackend per
// worker thread joins the shared route table, its own upstream client on the thread's
// loop, the access log (written here, access_log.h), and a record of finished requests
// that JavaScript reads in batches (router/proxy/fast.ts) for the metrics.
//
// Counting is done here as router/metrics/counters.ts WorkerCounters.request does, and
// JavaScript adds the totals into its counters every second and before each /metrics
// snapshot (take): its work per read depends on the hosts seen, not on the requests.
// take(dst) layout, f64 little-endian:
//   native, retries, resent, latencySum, latencyCount, bytesOut, statusClass[6], latency[buckets + 1],
//   kinds, upstreamErrors[kinds], hosts; then per host: u32 length, bytes, f64 counts[6].
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "access_log.h"
#include "fast_abi.h"
#include "host_counts.h"
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

class FastBackend final : public fast::Backend, public Napi::ObjectWrap<FastBackend> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FastBackend",
                       {
                           InstanceMethod<&FastBackend::Address>("address"),
                           InstanceMethod<&FastBackend::Take>("take"),
                           InstanceMethod<&FastBackend::InFlight>("inFlight"),
                           InstanceMethod<&FastBackend::Invalidate>("invalidate"),
                           InstanceMethod<&FastBackend::FlushLog>("flushLog"),
                           InstanceMethod<&FastBackend::AccessLogDropped>("accessLogDropped"),
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
    Napi::Value trusted = s.Get("trustedProxies");
    if (trusted.IsArray()) {
      Napi::Array a = trusted.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Object net = a.Get(i).As<Napi::Object>();
        Napi::Array bytes = net.Get("bytes").As<Napi::Array>();
        fast::TrustedNet t;
        for (uint32_t k = 0; k < bytes.Length(); k++)
          t.bytes.push_back(static_cast<char>(bytes.Get(k).ToNumber().Uint32Value()));
        t.prefix = net.Get("prefix").ToNumber().Uint32Value();
        cfg_.trustedProxies.push_back(std::move(t));
      }
    }
    cfg_.maxHeaderBytes = s.Get("maxHeaderBytes").ToNumber().Uint32Value();
    cfg_.maxAttempts = s.Get("maxAttempts").ToNumber().Uint32Value();
    Napi::Value maxHosts = s.Get("maxHosts");
    if (maxHosts.IsNumber() && maxHosts.As<Napi::Number>().Uint32Value() > 0) {
      byHost_.SetMaxHosts(maxHosts.As<Napi::Number>().Uint32Value());
    }
    Napi::Value bounds = s.Get("latencyBuckets");
    if (bounds.IsArray()) {
      auto a = bounds.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) bounds_.push_back(a.Get(i).ToNumber().DoubleValue());
    }
    latency_.assign(bounds_.size() + 1, 0);
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
        fc.idempotentOnly = c.Get("idempotentOnly").ToBoolean().Value();
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

  const fast::Config& Settings() const override { return cfg_; }
  void SetSink(fast::ResponseSink* sink) override {
    if (client_) client_->SetSink(closed_ ? nullptr : sink);
  }

  // A route with a route service answers kRouteService: JavaScript takes the request
  // (router/handlers/route-service.ts), as for any negative result.
  double Select(std::string_view host, std::string_view path, double nowMs) override {
    if (closed_) return rt::kNoRoute;
    return table_->Select(host, path, {}, {}, nowMs);
  }

  uint64_t Prefetch(std::string_view host) override {
    if (closed_) return 0;
    byHost_.Prefetch(host);
    return table_->Prefetch(host);
  }
  void PrefetchRoute(uint64_t token) override {
    if (!closed_) table_->PrefetchRoute(token);
  }
  void PrefetchCount(std::string_view host) override { byHost_.Prefetch(host); }

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
    // router/metrics/counters.ts WorkerCounters.request.
    int cls = f.status == 0 ? 0 : f.status / 100;
    int idx = cls >= 1 && cls <= 5 ? cls : 0;
    statusClass_[idx]++;
    byHost_.At(f.host)[static_cast<size_t>(idx)]++;
    double seconds = f.durationMs / 1000;
    size_t b = 0;
    while (b < bounds_.size() && seconds > bounds_[b]) b++;
    latency_[b]++;
    latencySum_ += seconds;
    latencyCount_++;
    bytesOut_ += f.bytes;
    native_++;
    if (log_) {
      log_->Line(f.startMs, f.host, f.method, f.target, f.status, f.bytes, f.durationMs, f.backend, f.requestId, f.client);
    }
  }

  void UpstreamFailed(int kind) override {
    auto k = static_cast<size_t>(kind);
    if (upstreamErrors_.size() <= k) upstreamErrors_.resize(k + 1, 0);
    upstreamErrors_[k]++;
    pending_ = true;
  }

  void Retried() override {
    retries_++;
    pending_ = true;
  }

 private:
  // address() → the address of this Backend's Handshake, for app.kilnAny in the uWS binding.
  Napi::Value Address(const Napi::CallbackInfo& info) {
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&handshake_)));
  }

  // take(dst) → bytes written into the Buffer dst (layout at the top; 0: nothing counted
  // since the last call), or minus the size needed when dst is too small (nothing is lost).
  // Also writes the access log's buffered lines (flushLog does that alone).
  Napi::Value Take(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (log_) log_->Flush();
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      Napi::TypeError::New(env, "take(buffer)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    // The client's own resends after a stale pooled connection (no event tells of them).
    double resent = 0;
    if (client_ && !closed_) {
      resent = client_->Resent() - resentTaken_;
      resentTaken_ += resent;
    }
    if (native_ == 0 && !pending_ && resent == 0) return Napi::Number::New(env, 0);
    size_t need = 8 * (6 + 6 + latency_.size() + 1 + upstreamErrors_.size() + 1);
    need += byHost_.DrainBytes();
    auto dst = info[0].As<Napi::Buffer<char>>();
    if (need > dst.Length()) {
      resentTaken_ -= resent;  // counted by the next call, with the bigger buffer
      return Napi::Number::New(env, -static_cast<double>(need));
    }
    char* p = dst.Data();
    auto f64 = [&p](double v) {
      std::memcpy(p, &v, 8);
      p += 8;
    };
    f64(native_);
    f64(retries_);
    f64(resent);
    f64(latencySum_);
    f64(latencyCount_);
    f64(bytesOut_);
    for (double v : statusClass_) f64(v);
    for (double v : latency_) f64(v);
    f64(static_cast<double>(upstreamErrors_.size()));
    for (double v : upstreamErrors_) f64(v);
    f64(static_cast<double>(byHost_.counted()));
    byHost_.Drain([&](std::string_view host, const HostCounts::Counts& counts) {
      auto len = static_cast<uint32_t>(host.size());
      std::memcpy(p, &len, 4);
      p += 4;
      std::memcpy(p, host.data(), host.size());
      p += host.size();
      for (double v : counts) f64(v);
    });
    native_ = retries_ = latencySum_ = latencyCount_ = bytesOut_ = 0;
    for (double& v : statusClass_) v = 0;
    for (double& v : latency_) v = 0;
    for (double& v : upstreamErrors_) v = 0;
    pending_ = false;
    return Napi::Number::New(env, static_cast<double>(p - dst.Data()));
  }

  Napi::Value InFlight(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), inFlight_); }

  // The table changed in a way that may move an endpoint (a prune): drop cached details.
  Napi::Value Invalidate(const Napi::CallbackInfo& info) {
    endpoints_.clear();
    return info.Env().Undefined();
  }

  // Writes the access log's buffered lines (router/proxy/fast.ts calls it as often as the
  // JavaScript path flushes its own log; take() flushes too).
  Napi::Value FlushLog(const Napi::CallbackInfo& info) {
    if (log_) log_->Flush();
    return info.Env().Undefined();
  }

  // Access log lines dropped so far because the target would not take them (access_log.h).
  Napi::Value AccessLogDropped(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), log_ ? log_->dropped() : 0);
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
  // Counts since the last take(), as WorkerCounters keeps them.
  std::vector<double> bounds_;
  HostCounts byHost_;
  double statusClass_[6] = {0, 0, 0, 0, 0, 0};
  std::vector<double> latency_;
  std::vector<double> upstreamErrors_;
  double latencySum_ = 0, latencyCount_ = 0, bytesOut_ = 0, native_ = 0, retries_ = 0;
  double resentTaken_ = 0;  // client_->Resent() as of the last take()
  bool pending_ = false;
  std::unique_ptr<AccessLogWriter> log_;
  int64_t inFlight_ = 0;
  bool closed_ = false;
  fast::Handshake handshake_{.backend = this};
};

}  // namespace

void InitFastBackend(Napi::Env env, Napi::Object exports) {
  exports.Set("FastBackend", FastBackend::Define(env));
  exports.Set("fastAbi", Napi::Number::New(env, fast::kAbi));
}

}  // namespace kiln
