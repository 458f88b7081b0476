// See fast_path.h. The JavaScript twins of each piece are named in the comments; a change
// to one side's behaviour must be made on the other (test/router/*.test.ts run both:
// KILN_ROUTER_FAST_PATH=0 turns this path off).
#include "fast_path.h"

#include <sys/random.h>
#include <time.h>

#include <cstring>

namespace kiln::fast {

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr size_t kKeepBytes = 8 * 1024;

double WallMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec / 1000000);
}

uint64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Random bytes from the kernel in 4 KiB helpings (one syscall per 256 request ids).
class RandomPool {
 public:
  const unsigned char* Take(size_t n) {
    if (pos_ + n > sizeof(buf_)) {
      size_t got = 0;
      while (got < sizeof(buf_)) {
        ssize_t r = getrandom(buf_ + got, sizeof(buf_) - got, 0);
        if (r > 0) got += static_cast<size_t>(r);
      }
      pos_ = 0;
    }
    const unsigned char* p = buf_ + pos_;
    pos_ += n;
    return p;
  }

 private:
  unsigned char buf_[4096];
  size_t pos_ = sizeof(buf_);
};

thread_local RandomPool randomPool;
thread_local uint32_t spanCounter = 0;
thread_local char spanPrefix[9] = {0};

bool IsHex(char c, bool upperToo) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (upperToo && c >= 'A' && c <= 'F');
}

// router/handlers/request-headers.ts requestIdFor: a UUID given by the client is kept.
bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!IsHex(s[i], true)) {
      return false;
    }
  }
  return true;
}

void NewUuid(std::string* out) {
  const unsigned char* r = randomPool.Take(16);
  unsigned char b[16];
  std::memcpy(b, r, 16);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  out->resize(36);
  char* o = out->data();
  for (int i = 0, j = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) o[j++] = '-';
    o[j++] = kHex[b[i] >> 4];
    o[j++] = kHex[b[i] & 15];
  }
}

bool AllZero(std::string_view s) {
  for (char c : s) {
    if (c != '0') return false;
  }
  return true;
}

// router/handlers/request-headers.ts traceparentFor: a valid W3C traceparent is passed on,
// else a new one whose trace id is the request id's hex digits.
void AppendTraceparent(std::string* head, std::string_view given, std::string_view requestId) {
  if (given.size() == 55 && given[2] == '-' && given[35] == '-' && given[52] == '-') {
    bool ok = true;
    for (size_t i = 0; i < 55 && ok; i++) {
      if (i != 2 && i != 35 && i != 52) ok = IsHex(given[i], false);
    }
    if (ok && given.substr(0, 2) != "ff" && !AllZero(given.substr(3, 32)) && !AllZero(given.substr(36, 16))) {
      head->append(given);
      return;
    }
  }
  if (spanPrefix[0] == 0) {
    const unsigned char* r = randomPool.Take(4);
    for (int i = 0; i < 4; i++) {
      spanPrefix[2 * i] = kHex[r[i] >> 4];
      spanPrefix[2 * i + 1] = kHex[r[i] & 15];
    }
  }
  head->append("00-");
  for (char c : requestId) {
    if (c != '-') head->push_back(c >= 'A' && c <= 'F' ? static_cast<char>(c | 0x20) : c);
  }
  head->push_back('-');
  head->append(spanPrefix, 8);
  uint32_t n = ++spanCounter;
  char digits[8];
  for (int i = 7; i >= 0; i--, n >>= 4) digits[i] = kHex[n & 15];
  head->append(digits, 8);
  head->append("-01");
}

void AppendNumber(std::string* out, uint64_t v) {
  char d[24];
  int n = 0;
  do {
    d[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out->push_back(d[--n]);
}

// The request fields that are not sent upstream as they came: hop-by-hop ones (RFC 9110
// 7.6.1), the body's framing (the router declares it itself: router/handlers/request-headers.ts
// framingLine) and the ones the router sets itself (collectHeader's early returns).
bool Forwarded(std::string_view k) {
  switch (k.size()) {
    case 2:
      return k != "te";
    case 7:
      return k != "trailer";
    case 10:
      return k != "keep-alive" && k != "connection";
    case 11:
      return k != "traceparent";
    case 14:
      return k != "content-length";
    case 15:
      return k != "x-request-start" && k != "x-forwarded-for" && k != "x-cf-instanceid";
    case 16:
      return k != "proxy-connection";
    case 17:
      return k != "x-forwarded-proto" && k != "x-vcap-request-id" && k != "transfer-encoding";
    case 18:
      return k != "x-cf-applicationid" && k != "x-cf-instanceindex";
    default:
      return true;
  }
}

// router/handlers/forwarded.ts isTrusted: the peer's raw address (IPv4-mapped IPv6 read as
// IPv4) in one of the trusted networks.
bool Trusted(const std::vector<TrustedNet>& nets, std::string_view peer) {
  if (nets.empty()) return false;
  if (peer.size() == 16 && static_cast<unsigned char>(peer[10]) == 255 && static_cast<unsigned char>(peer[11]) == 255 &&
      peer.substr(0, 10).find_first_not_of('\0') == std::string_view::npos) {
    peer.remove_prefix(12);
  }
  for (const TrustedNet& n : nets) {
    if (n.bytes.size() != peer.size()) continue;
    uint32_t bits = n.prefix;
    size_t i = 0;
    for (; bits >= 8; bits -= 8, i++) {
      if (peer[i] != n.bytes[i]) break;
    }
    if (bits >= 8) continue;
    if (bits == 0) return true;
    auto mask = static_cast<unsigned char>(0xff << (8 - bits));
    if ((static_cast<unsigned char>(peer[i]) & mask) == (static_cast<unsigned char>(n.bytes[i]) & mask)) return true;
  }
  return false;
}

// router/handlers/forwarded.ts forwardedClient: the last X-Forwarded-For entry, else the peer.
std::string_view ForwardedClient(std::string_view xff, std::string_view peer) {
  size_t comma = xff.rfind(',');
  std::string_view last = comma == std::string_view::npos ? xff : xff.substr(comma + 1);
  while (!last.empty() && (last.front() == ' ' || last.front() == '\t')) last.remove_prefix(1);
  while (!last.empty() && (last.back() == ' ' || last.back() == '\t')) last.remove_suffix(1);
  return last.empty() ? peer : last;
}

bool EqualsLower(std::string_view v, std::string_view lower) {
  if (v.size() != lower.size()) return false;
  for (size_t i = 0; i < v.size(); i++) {
    if ((v[i] | 0x20) != lower[i]) return false;
  }
  return true;
}

}  // namespace

FastPath::FastPath(Backend* backend) : backend_(backend), cfg_(backend->Settings()) { backend->SetSink(this); }

// The app is gone (its handler held the last reference): no uWS or upstream callback can
// reach an exchange any more. The backend may be gone too, so it is not called.
FastPath::~FastPath() {
  for (Exchange* ex : all_) delete ex;
}

FastPath::Exchange* FastPath::Acquire() {
  if (free_.empty()) {
    auto* ex = new Exchange();
    ex->owner = this;
    ex->slot = static_cast<uint32_t>(all_.size());
    all_.push_back(ex);
    return ex;
  }
  Exchange* ex = all_[free_.back()];
  free_.pop_back();
  return ex;
}

FastPath::Exchange* FastPath::Active(uint32_t id) {
  if (id >= all_.size()) return nullptr;
  Exchange* ex = all_[id];
  return ex->upstreamActive ? ex : nullptr;
}

// router/handlers/client-address.ts addressText.
std::string_view FastPath::ClientAddress(Res* res) {
  std::string_view b = res->getRemoteAddress();
  if (b == addrBytes_ && !addrText_.empty()) return addrText_;
  addrBytes_.assign(b);
  addrText_.clear();
  const auto* u = reinterpret_cast<const unsigned char*>(b.data());
  if (b.size() == 4) {
    for (int i = 0; i < 4; i++) {
      if (i > 0) addrText_.push_back('.');
      AppendNumber(&addrText_, u[i]);
    }
  } else if (b.size() == 16) {
    for (int i = 0; i < 16; i += 2) {
      if (i > 0) addrText_.push_back(':');
      for (int k = 0; k < 2; k++) {
        addrText_.push_back(kHex[u[i + k] >> 4]);
        addrText_.push_back(kHex[u[i + k] & 15]);
      }
    }
  } else {
    for (unsigned char c : b) {
      addrText_.push_back(kHex[c >> 4]);
      addrText_.push_back(kHex[c & 15]);
    }
  }
  return addrText_;
}

// router/worker.ts onRequest + router/handlers/request-headers.ts collectHeader, for the
// requests this path takes; any other request is declined before anything is changed.
bool FastPath::Handle(Res* res, uWS::HttpRequest* req) {
  std::string_view host, xfp, vcapId, traceparent;
  size_t bytes = 0;
  bool sawConnection = false, sawLength = false;
  xff_.clear();
  for (auto [k, v] : *req) {
    bytes += k.size() + v.size() + 4;
    switch (k.size()) {
      case 4:
        if (k == "host") host = v;
        break;
      case 6:
        if (k == "cookie" && v.find("__VCAP_ID__=") != std::string_view::npos) return false;
        if (k == "expect") return false;
        break;
      case 7:
        if (k == "upgrade") return false;
        break;
      case 10:
        if (k == "connection") {
          if (sawConnection || !(EqualsLower(v, "keep-alive") || EqualsLower(v, "close"))) return false;
          sawConnection = true;
        }
        break;
      case 11:
        if (k == "traceparent") traceparent = v;
        break;
      case 14:
        if (k == "content-length") {
          if (sawLength || v != "0") return false;
          sawLength = true;
        }
        break;
      case 15:
        if (k == "x-forwarded-for") {
          if (!xff_.empty() && !v.empty()) xff_.append(", ");
          xff_.append(v);
        }
        break;
      case 17:
        if (k == "transfer-encoding" || k == "x-cf-app-instance") return false;
        if (k == "x-forwarded-proto") {
          if (xfp.empty()) xfp = v;
        } else if (k == "x-vcap-request-id") {
          vcapId = v;
        }
        break;
      default:
        break;
    }
  }
  if (bytes > cfg_.maxHeaderBytes || host.empty()) return false;
  // The route lookup's cache misses (and the per-host count's) load while the upstream head
  // is built, in two steps (the route's address is in the bucket); Select comes after it.
  // With requests spread over 1000 hosts the lookup missed on the bucket, the route and the
  // shard's lock one after another (fast_abi.h).
  const uint64_t warm = backend_->Prefetch(host);
  std::string_view url = req->getUrl();
  double nowMs = WallMs();

  Exchange* ex = Acquire();
  ex->res = res;
  ex->host.assign(host);
  std::string_view method = req->getCaseSensitiveMethod();
  ex->method.assign(method);
  ex->isHead = method == "HEAD";
  ex->replaySafe = upstream::IdempotentMethod(method);
  std::string_view target = req->getFullUrl();
  ex->target.assign(target);
  ex->path.assign(url);
  if (IsUuid(vcapId)) {
    ex->requestId.assign(vcapId);
  } else {
    NewUuid(&ex->requestId);
  }
  ex->startMs = nowMs;
  ex->startNs = MonoNs();
  ex->attempts = 1;
  ex->status = 0;
  ex->bytesOut = 0;
  ex->total = -1;
  ex->responded = ex->finished = ex->upstreamPaused = ex->writableHooked = false;
  ex->stash.clear();

  std::string& h = ex->head;
  h.clear();
  h.append(method).push_back(' ');
  h.append(target).append(" HTTP/1.1\r\n");
  for (auto [k, v] : *req) {
    if (!Forwarded(k)) continue;
    h.append(k).append(": ").append(v).append("\r\n");
  }
  backend_->PrefetchRoute(warm);
  std::string_view addr = ClientAddress(res);
  const bool trusted = Trusted(cfg_.trustedProxies, addrBytes_);
  ex->client.assign(trusted ? ForwardedClient(xff_, addr) : addr);
  h.append("x-forwarded-for: ");
  if (!xff_.empty()) h.append(xff_).append(", ");
  h.append(addr).append("\r\nx-forwarded-proto: ");
  h.append(trusted && !xfp.empty() ? xfp : std::string_view(cfg_.forwardedProto)).append("\r\nx-request-start: ");
  AppendNumber(&h, static_cast<uint64_t>(nowMs));
  h.append("\r\nx-vcap-request-id: ").append(ex->requestId).append("\r\ntraceparent: ");
  AppendTraceparent(&h, traceparent, ex->requestId);
  // The framing the parser accepted, declared by the router (request-headers.ts framingLine):
  // this path takes only requests without a body.
  h.append(sawLength ? "\r\ncontent-length: 0\r\n" : "\r\n");
  ex->baseLen = h.size();

  ex->handle = backend_->Select(host, url, nowMs);
  if (ex->handle < 0) {
    Recycle(ex);
    return false;
  }
  backend_->Started();
  uint32_t gen = ex->gen;
  res->onAborted([ex, gen]() {
    if (ex->gen == gen) ex->owner->OnAborted(ex);
  });
  Start(ex);
  return true;
}

// router/proxy/native-exchange.ts start.
void FastPath::Start(Exchange* ex) {
  ex->ep = backend_->EndpointOf(ex->handle);
  if (!ex->ep) {
    Fail(ex, cfg_.kindConnectError);
    return;
  }
  ex->head.resize(ex->baseLen);
  ex->head.append(ex->ep->headerBlock).append("\r\n");
  uint32_t flags = kReqEnd | (ex->isHead ? kReqHead : 0);
  int32_t code = backend_->Request(ex->slot, *ex->ep, ex->head, flags);
  if (code != 0) {
    int kind = static_cast<size_t>(code) < cfg_.kindOfCode.size() ? cfg_.kindOfCode[code] : cfg_.kindConnectError;
    Fail(ex, kind);
    return;
  }
  ex->upstreamActive = true;
}

void FastPath::OnResponse(uint32_t id, int status, std::string_view head, std::string_view body, uint32_t flags,
                          int64_t length) {
  Exchange* ex = Active(id);
  if (ex == nullptr) return;
  if ((flags & (kResComplete | kResNoBody)) != 0) ex->upstreamActive = false;
  Res* res = ex->res;
  if (res == nullptr) return;
  backend_->PrefetchCount(ex->host);  // for Done, after the response is written
  cEx_ = ex;
  cStatus_ = status;
  cHead_ = head;
  cBody_ = body;
  cFlags_ = flags;
  cLength_ = length;
  res->cork([this]() { WriteResponse(cEx_, cStatus_, cHead_, cBody_, cFlags_, cLength_); });
}

// router/proxy/native-exchange.ts writeResponse (inside cork).
void FastPath::WriteResponse(Exchange* ex, int status, std::string_view head, std::string_view body,
                             uint32_t flags, int64_t length) {
  Res* res = ex->res;
  ex->status = status;
  ex->responded = true;
  res->writeStatus(head);
  if (!ex->ep->instanceId.empty() && (flags & kResSetCookie) != 0) StickyCookie(ex, head);
  if ((flags & kResNoBody) != 0) {
    if (ex->isHead && length >= 0) {
      res->endWithoutBody(static_cast<size_t>(length));
    } else {
      res->endWithoutBody();
    }
    ClientDone(ex);
    return;
  }
  if ((flags & kResComplete) != 0) {
    res->end(body);
    ex->bytesOut = static_cast<double>(body.size());
    ClientDone(ex);
    return;
  }
  ex->total = length;
  if (!body.empty()) Relay(ex, body);
}

// router/proxy/native-exchange.ts stickyCookie, for a request that carried no __VCAP_ID__:
// __VCAP_ID__ is added next to a session cookie, with its attributes.
void FastPath::StickyCookie(Exchange* ex, std::string_view head) {
  std::string_view attrs;
  bool session = false;
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    pos = end;
    if (line.size() < 11 || line[10] != ':' || !EqualsLower(line.substr(0, 10), "set-cookie")) continue;
    std::string_view v = line.substr(11);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    size_t eq = v.find('=');
    std::string_view name = eq == std::string_view::npos ? v : v.substr(0, eq);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (name == "__VCAP_ID__") return;
    for (const std::string& s : cfg_.stickyCookies) {
      if (name == s) {
        size_t semi = v.find(';');
        attrs = semi == std::string_view::npos ? std::string_view() : v.substr(semi);
        while (!attrs.empty() && (attrs.back() == ' ' || attrs.back() == '\t')) attrs.remove_suffix(1);
        session = true;
        break;
      }
    }
  }
  if (!session) return;
  std::string value("__VCAP_ID__=");
  value.append(ex->ep->instanceId).append(attrs);
  ex->res->writeHeader("Set-Cookie", value);
}

void FastPath::OnData(uint32_t id, std::string_view chunk, bool last) {
  Exchange* ex = Active(id);
  if (ex == nullptr) return;
  if (last) ex->upstreamActive = false;
  Res* res = ex->res;
  if (res == nullptr) return;
  if (last) backend_->PrefetchCount(ex->host);  // for Done, after the last chunk is written
  cEx_ = ex;
  cBody_ = chunk;
  cLast_ = last;
  res->cork([this]() { WriteData(cEx_, cBody_, cLast_); });
}

void FastPath::WriteData(Exchange* ex, std::string_view chunk, bool last) {
  if (!chunk.empty()) Relay(ex, chunk);
  if (last && ex->total < 0 && ex->res != nullptr) {
    ex->res->end();
    ClientDone(ex);
  }
}

// router/proxy/native-exchange.ts relay: the client's backpressure pauses the backend.
void FastPath::Relay(Exchange* ex, std::string_view piece) {
  Res* res = ex->res;
  ex->bytesOut += static_cast<double>(piece.size());
  bool blocked;
  if (ex->total >= 0) {
    uintmax_t before = res->getWriteOffset();
    auto [ok, done] = res->tryEnd(piece, static_cast<uintmax_t>(ex->total));
    if (done) {
      ClientDone(ex);
      return;
    }
    blocked = !ok;
    if (blocked) {
      ex->stash.assign(piece);  // a view of the upstream read buffer: keep a copy
      ex->stashOffset = before;
    }
  } else {
    blocked = !res->write(piece);
  }
  if (!blocked) return;
  if (!ex->upstreamPaused && ex->upstreamActive) {
    ex->upstreamPaused = true;
    backend_->Pause(ex->slot);
  }
  if (!ex->writableHooked) {
    ex->writableHooked = true;
    uint32_t gen = ex->gen;
    res->onWritable([ex, gen](uintmax_t offset) {
      return ex->gen != gen || ex->owner->OnWritable(ex, offset);
    });
  }
}

bool FastPath::OnWritable(Exchange* ex, uintmax_t offset) {
  Res* res = ex->res;
  if (res == nullptr) return true;
  bool ok = true;
  if (!ex->stash.empty()) {
    std::string_view rest(ex->stash);
    rest.remove_prefix(static_cast<size_t>(offset - ex->stashOffset));
    auto [sent, done] = res->tryEnd(rest, static_cast<uintmax_t>(ex->total));
    ok = sent;
    if (done) {
      ex->stash.clear();
      ClientDone(ex);
      return true;
    }
    if (ok) ex->stash.clear();
  }
  if (ok && ex->upstreamPaused) {
    ex->upstreamPaused = false;
    if (ex->upstreamActive) backend_->Resume(ex->slot);
  }
  return ok;
}

void FastPath::OnDrain(uint32_t /*id*/) {}  // no request body goes this way

// router/proxy/native-exchange.ts onError.
void FastPath::OnError(uint32_t id, int32_t code) {
  Exchange* ex = Active(id);
  if (ex == nullptr) return;
  ex->upstreamActive = false;
  int kind = code >= 0 && static_cast<size_t>(code) < cfg_.kindOfCode.size() ? cfg_.kindOfCode[code] : -1;
  if (kind < 0) kind = cfg_.kindBadResponse;
  if (ex->responded) {
    Interrupt(ex, kind == cfg_.kindResponseTimeout ? cfg_.kindBodyInterrupted : kind);
  } else {
    Fail(ex, kind);
  }
}

// router/proxy/native-exchange.ts fail: retry on another endpoint while allowed, else refuse.
void FastPath::Fail(Exchange* ex, int kind) {
  const FailureClass& fc = cfg_.classes[static_cast<size_t>(kind)];
  backend_->UpstreamFailed(kind);
  if (ex->res == nullptr || ex->finished) return;
  double now = WallMs();
  if (fc.markFailed && ex->handle >= 0) backend_->MarkFailed(ex->handle, now + cfg_.failedEndpointSkipMs);
  if (fc.retriable && (!fc.idempotentOnly || ex->replaySafe) && ex->attempts < cfg_.maxAttempts) {
    ex->attempts++;
    double failed = ex->handle;
    if (failed >= 0) backend_->Release(failed);
    // Like gorouter, the sticky instance is asked for on the first attempt only.
    ex->handle = backend_->Select(ex->host, ex->path, now);
    if (ex->handle >= 0 && !(ex->handle == failed && fc.markFailed)) {
      backend_->Retried();  // counted only when another attempt goes out
      Start(ex);
      return;
    }
  }
  Refuse(ex, fc.refusal);
}

void FastPath::Refuse(Exchange* ex, const Refusal& r) {
  cEx_ = ex;
  cRefusal_ = &r;
  ex->res->cork([this]() {
    Exchange* e = cEx_;
    const Refusal& rf = *cRefusal_;
    e->responded = true;
    e->status = std::atoi(rf.status.c_str());
    e->res->writeStatus(rf.status)
        ->writeHeader("X-Kiln-Router-Error", rf.cause)
        ->writeHeader("Content-Type", "text/plain; charset=utf-8");
    // router/proxy/exchange-base.ts writeRefusal: a HEAD answer has the length and no body.
    if (e->isHead) {
      e->res->endWithoutBody(rf.body.size());
    } else {
      e->res->end(rf.body);
      e->bytesOut += static_cast<double>(rf.body.size());
    }
    ClientDone(e);
  });
}

void FastPath::Interrupt(Exchange* ex, int kind) {
  backend_->UpstreamFailed(kind);
  Res* res = ex->res;
  if (res == nullptr) return;
  ex->res = nullptr;
  int status = ex->status;
  Finish(ex, status);  // recycles ex first, so the abort that close() reports finds a stale gen
  res->close();
}

void FastPath::OnAborted(Exchange* ex) {
  ex->res = nullptr;
  if (ex->upstreamActive) {
    ex->upstreamActive = false;
    backend_->Abort(ex->slot);
    backend_->UpstreamFailed(cfg_.kindClientAborted);
  }
  Finish(ex, 0);
}

void FastPath::ClientDone(Exchange* ex) {
  ex->res = nullptr;
  Finish(ex, ex->status);
}

// router/proxy/exchange-base.ts finish: the endpoint released, the request counted and logged.
void FastPath::Finish(Exchange* ex, int status) {
  if (ex->finished) return;
  ex->finished = true;
  if (ex->handle >= 0) {
    backend_->Release(ex->handle);
    ex->handle = -1;
  }
  if (ex->upstreamActive) {
    ex->upstreamActive = false;
    backend_->Abort(ex->slot);
  }
  double durationMs = static_cast<double>(MonoNs() - ex->startNs) / 1e6;
  Finished f{ex->startMs,  durationMs, ex->bytesOut,
             status,       ex->host,   ex->method,
             ex->target,   ex->ep ? std::string_view(ex->ep->label) : std::string_view(),
             ex->requestId, ex->client};
  backend_->Done(f);
  Recycle(ex);
}

void FastPath::Recycle(Exchange* ex) {
  ex->ep.reset();
  ex->res = nullptr;
  ex->gen++;
  // Pooled exchanges keep their buffers for the next request, but not the rare large ones:
  // many connections that once sent a 32 KiB head must not keep 32 KiB each for good.
  if (ex->head.capacity() > kKeepBytes) std::string().swap(ex->head);
  if (ex->target.capacity() > kKeepBytes) std::string().swap(ex->target);
  if (ex->path.capacity() > kKeepBytes) std::string().swap(ex->path);
  if (ex->stash.capacity() > kKeepBytes) std::string().swap(ex->stash);
  free_.push_back(ex->slot);
}

}  // namespace kiln::fast
