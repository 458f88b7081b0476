// JavaScript face of the route table: createRouteTable() and attachRouteTable(id) return
// an object of plain functions bound (through their data pointer) to one process-wide
// table, so a call costs one N-API crossing and no unwrap. Hot calls read strings into
// stack buffers and allocate nothing.
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "modules.h"
#include "route_table.h"

namespace kiln {

namespace {

using rt::Table;
using TablePtr = std::shared_ptr<Table>;

// The endpoint of this thread's last register() call, owned: one register message carries
// every uri of an endpoint, so registerLast() applies the next uri without converting the
// endpoint's seven strings again (perf: string conversion was ~10% of a registration).
struct LastEndpoint {
  std::string host, app, id, index, extras, key;
  uint32_t port = 0, tlsPort = 0, staleSec = 0;
  uint64_t updatedAtNs = 0;
  bool valid = false;
  rt::EndpointInput View() const {
    return rt::EndpointInput{host, app, id, index, extras, key, port, tlsPort, staleSec, updatedAtNs};
  }
};

// What one thread's bound functions share: the table and that thread's last endpoint.
struct Bound {
  TablePtr table;
  LastEndpoint last;
};
using BoundPtr = std::shared_ptr<Bound>;

// Tables by id; leaked on purpose so exit never races a worker thread still reading.
struct Registry {
  std::mutex lock;
  std::unordered_map<uint32_t, TablePtr> tables;
  uint32_t nextId = 1;
};
Registry& TheRegistry() {
  static auto* r = new Registry();
  return *r;
}

// A request-sized string as UTF-8 bytes in a stack buffer, spilling to the heap only when long.
// Read as UTF-16 and narrowed here: for the ASCII strings of HTTP requests that is a widening
// copy plus one pass, about 3x cheaper than V8's WriteUtf8 (perf: 22% of select() before).
class Str {
 public:
  Str(napi_env env, napi_value v) {
    size_t len = 0;
    if (napi_get_value_string_utf16(env, v, u16_, kUnits, &len) != napi_ok) return;
    const char16_t* src = u16_;
    std::u16string big;
    if (len + 1 >= kUnits) {
      size_t full = 0;
      napi_get_value_string_utf16(env, v, nullptr, 0, &full);
      if (full > len) {
        big.resize(full + 1);
        napi_get_value_string_utf16(env, v, big.data(), big.size(), &len);
        src = big.data();
      }
    }
    char* out = bytes_;
    if (len * 3 > sizeof(bytes_)) {
      heap_.resize(len * 3);
      out = heap_.data();
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
      uint32_t c = src[i];
      if (c < 0x80) {
        out[n++] = static_cast<char>(c);
      } else if (c < 0x800) {
        out[n++] = static_cast<char>(0xc0 | (c >> 6));
        out[n++] = static_cast<char>(0x80 | (c & 0x3f));
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          uint32_t next = i + 1 < len ? src[i + 1] : 0;
          if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
            // A surrogate pair takes 4 bytes for 2 units: within the 3-per-unit budget.
            c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
            i++;
            out[n++] = static_cast<char>(0xf0 | (c >> 18));
            out[n++] = static_cast<char>(0x80 | ((c >> 12) & 0x3f));
            out[n++] = static_cast<char>(0x80 | ((c >> 6) & 0x3f));
            out[n++] = static_cast<char>(0x80 | (c & 0x3f));
            continue;
          }
          c = 0xfffd;  // a lone surrogate, as N-API's UTF-8 conversion writes it
        }
        out[n++] = static_cast<char>(0xe0 | (c >> 12));
        out[n++] = static_cast<char>(0x80 | ((c >> 6) & 0x3f));
        out[n++] = static_cast<char>(0x80 | (c & 0x3f));
      }
    }
    view_ = std::string_view(out, n);
  }
  std::string_view view() const { return view_; }

 private:
  static constexpr size_t kUnits = 512;
  char16_t u16_[kUnits];
  char bytes_[kUnits * 3];
  std::string heap_;
  std::string_view view_;
};

double Num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

uint64_t BigU64(napi_env env, napi_value v) {
  uint64_t out = 0;
  bool lossless = true;
  if (napi_get_value_bigint_uint64(env, v, &out, &lossless) != napi_ok) {
    double d = 0;
    if (napi_get_value_double(env, v, &d) == napi_ok && d > 0) out = static_cast<uint64_t>(d);
  }
  return out;
}

napi_value MakeNum(napi_env env, double d) {
  napi_value out;
  napi_create_double(env, d, &out);
  return out;
}

napi_value MakeStr(napi_env env, std::string_view s) {
  napi_value out;
  napi_create_string_utf8(env, s.data(), s.size(), &out);
  return out;
}

napi_value Undefined(napi_env env) {
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}

template <size_t N>
Bound* BoundArgs(napi_env env, napi_callback_info info, napi_value (&argv)[N]) {
  size_t argc = N;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  for (size_t i = argc; i < N; i++) napi_get_undefined(env, &argv[i]);
  Bound* b = static_cast<BoundPtr*>(data)->get();
  if (b->table->closed()) {
    napi_throw_error(env, "KILN_TABLE_CLOSED", "the route table was closed");
    return nullptr;
  }
  return b;
}

template <size_t N>
Table* Args(napi_env env, napi_callback_info info, napi_value (&argv)[N]) {
  Bound* b = BoundArgs(env, info, argv);
  return b == nullptr ? nullptr : b->table.get();
}

// One uri of this thread's last endpoint; pool = [lb, hashHeader, hashBalance, maxConns,
// routeService, nowMs], the same six trailing arguments of register() and registerLast().
napi_value RegisterUri(napi_env env, Bound* b, napi_value hostArg, napi_value pathArg, const napi_value* pool) {
  Str host(env, hostArg), path(env, pathArg), hashHeader(env, pool[1]), routeService(env, pool[4]);
  rt::PoolInput opt{static_cast<rt::Lb>(static_cast<int>(Num(env, pool[0]))), hashHeader.view(), Num(env, pool[2]),
                    static_cast<uint32_t>(Num(env, pool[3])), routeService.view()};
  int r = b->table->Register(host.view(), path.view(), b->last.View(), opt, Num(env, pool[5]));
  if (r < 0) {
    napi_throw_error(env, "KILN_TABLE_CLOSED", "the route table was closed");
    return nullptr;
  }
  return MakeNum(env, r);
}

// register(host, path, key, epHost, port, app, instanceId, index, extras, staleSec, tlsPort,
//          updatedAtNs, lb, hashHeader, hashBalance, maxConns, routeService, nowMs) -> RegisterResult
// The endpoint is kept as this thread's last one for registerLast().
napi_value Register(napi_env env, napi_callback_info info) {
  napi_value a[18];
  Bound* b = BoundArgs(env, info, a);
  if (b == nullptr) return nullptr;
  LastEndpoint& last = b->last;
  last.valid = false;
  Str key(env, a[2]), epHost(env, a[3]), app(env, a[5]), id(env, a[6]), index(env, a[7]), extras(env, a[8]);
  last.key.assign(key.view());
  last.host.assign(epHost.view());
  last.app.assign(app.view());
  last.id.assign(id.view());
  last.index.assign(index.view());
  last.extras.assign(extras.view());
  last.port = static_cast<uint32_t>(Num(env, a[4]));
  last.tlsPort = static_cast<uint32_t>(Num(env, a[10]));
  last.staleSec = static_cast<uint32_t>(Num(env, a[9]));
  last.updatedAtNs = BigU64(env, a[11]);
  napi_value out = RegisterUri(env, b, a[0], a[1], &a[12]);
  last.valid = out != nullptr;
  return out;
}

// registerLast(host, path, lb, hashHeader, hashBalance, maxConns, routeService, nowMs) -> RegisterResult:
// the next uri of the endpoint given to this thread's last register().
napi_value RegisterLast(napi_env env, napi_callback_info info) {
  napi_value a[8];
  Bound* b = BoundArgs(env, info, a);
  if (b == nullptr) return nullptr;
  if (!b->last.valid) {
    napi_throw_error(env, "KILN_TABLE_NO_LAST_ENDPOINT", "registerLast() without a register() before it");
    return nullptr;
  }
  return RegisterUri(env, b, a[0], a[1], &a[2]);
}

// unregister(host, path, key, updatedAtNs, nowMs) -> boolean
napi_value Unregister(napi_env env, napi_callback_info info) {
  napi_value a[5];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  Str host(env, a[0]), path(env, a[1]), key(env, a[2]);
  napi_value out;
  napi_get_boolean(env, t->Unregister(host.view(), path.view(), key.view(), BigU64(env, a[3]), Num(env, a[4])),
                   &out);
  return out;
}

napi_value Prune(napi_env env, napi_callback_info info) {
  napi_value a[1];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  return MakeNum(env, t->Prune(Num(env, a[0])));
}

// true only for the boolean true (an absent argument is undefined).
bool IsTrue(napi_env env, napi_value v) {
  bool out = false;
  napi_get_value_bool(env, v, &out);
  return out;
}

// select(host, path, stickyId, hashKey, nowMs, routeServiceDone?) -> handle | SelectError: the hot path.
napi_value Select(napi_env env, napi_callback_info info) {
  napi_value a[6];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  Str host(env, a[0]), path(env, a[1]), sticky(env, a[2]), hashKey(env, a[3]);
  return MakeNum(env, t->Select(host.view(), path.view(), sticky.view(), hashKey.view(), Num(env, a[4]),
                                IsTrue(env, a[5])));
}

napi_value SelectInstance(napi_env env, napi_callback_info info) {
  napi_value a[6];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  Str host(env, a[0]), path(env, a[1]), app(env, a[2]), index(env, a[3]);
  return MakeNum(env, t->SelectInstance(host.view(), path.view(), app.view(), index.view(), Num(env, a[4]),
                                        IsTrue(env, a[5])));
}

// routeService(host, path) -> the matched route's route service URL, or "".
napi_value RouteService(napi_env env, napi_callback_info info) {
  napi_value a[2];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  Str host(env, a[0]), path(env, a[1]);
  std::string out;
  t->RouteService(host.view(), path.view(), &out);
  return MakeStr(env, out);
}

napi_value HashHeader(napi_env env, napi_callback_info info) {
  napi_value a[2];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  Str host(env, a[0]), path(env, a[1]);
  std::string out;
  t->HashHeader(host.view(), path.view(), &out);
  return MakeStr(env, out);
}

napi_value Release(napi_env env, napi_callback_info info) {
  napi_value a[1];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  t->Release(Num(env, a[0]));
  return Undefined(env);
}

napi_value MarkFailed(napi_env env, napi_callback_info info) {
  napi_value a[2];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  t->MarkFailed(Num(env, a[0]), Num(env, a[1]));
  return Undefined(env);
}

napi_value InFlight(napi_env env, napi_callback_info info) {
  napi_value a[1];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  return MakeNum(env, static_cast<double>(t->InFlight(Num(env, a[0]))));
}

// [host, port, app, instanceId, index, extras, inFlight, updatedAtNs, staleSec, failedUntil]
napi_value EndpointArray(napi_env env, const rt::EndpointCopy& e) {
  napi_value arr;
  napi_create_array_with_length(env, 10, &arr);
  napi_set_element(env, arr, 0, MakeStr(env, e.host));
  napi_set_element(env, arr, 1, MakeNum(env, e.port));
  napi_set_element(env, arr, 2, MakeStr(env, e.app));
  napi_set_element(env, arr, 3, MakeStr(env, e.instanceId));
  napi_set_element(env, arr, 4, MakeStr(env, e.index));
  napi_set_element(env, arr, 5, MakeStr(env, e.extras));
  napi_set_element(env, arr, 6, MakeNum(env, e.inFlight));
  napi_set_element(env, arr, 7, MakeStr(env, std::to_string(e.updatedAtNs)));
  napi_set_element(env, arr, 8, MakeNum(env, e.staleSec));
  napi_set_element(env, arr, 9, MakeNum(env, e.failedUntil));
  return arr;
}

napi_value Endpoint(napi_env env, napi_callback_info info) {
  napi_value a[1];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  rt::EndpointCopy e;
  if (!t->Endpoint(Num(env, a[0]), &e)) {
    napi_value null;
    napi_get_null(env, &null);
    return null;
  }
  return EndpointArray(env, e);
}

napi_value Stats(napi_env env, napi_callback_info info) {
  napi_value a[1];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  uint64_t routes, endpoints;
  t->Stats(&routes, &endpoints);
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, MakeNum(env, static_cast<double>(routes)));
  napi_set_element(env, arr, 1, MakeNum(env, static_cast<double>(endpoints)));
  return arr;
}

// [[route, lb, hashHeader, balance, maxConns, [[handle, lastSeenMs, ...EndpointArray], ...], routeService], ...]
napi_value Dump(napi_env env, napi_callback_info info) {
  napi_value a[1];
  Table* t = Args(env, info, a);
  if (t == nullptr) return nullptr;
  std::vector<rt::RouteCopy> routes = t->Dump();
  napi_value out;
  napi_create_array_with_length(env, routes.size(), &out);
  for (size_t i = 0; i < routes.size(); i++) {
    const rt::RouteCopy& rc = routes[i];
    napi_value row, eps;
    napi_create_array_with_length(env, 7, &row);
    napi_set_element(env, row, 0, MakeStr(env, rc.route));
    napi_set_element(env, row, 1, MakeNum(env, static_cast<double>(rc.lb)));
    napi_set_element(env, row, 2, MakeStr(env, rc.hashHeader));
    napi_set_element(env, row, 3, MakeNum(env, rc.balance));
    napi_set_element(env, row, 4, MakeNum(env, rc.maxConns));
    napi_create_array_with_length(env, rc.endpoints.size(), &eps);
    for (size_t j = 0; j < rc.endpoints.size(); j++) {
      napi_value ep;
      napi_create_array_with_length(env, 3, &ep);
      napi_set_element(env, ep, 0, MakeNum(env, static_cast<double>(rc.endpoints[j].first.handle)));
      napi_set_element(env, ep, 1, MakeNum(env, rc.endpoints[j].second));
      napi_set_element(env, ep, 2, EndpointArray(env, rc.endpoints[j].first));
      napi_set_element(env, eps, j, ep);
    }
    napi_set_element(env, row, 5, eps);
    napi_set_element(env, row, 6, MakeStr(env, rc.routeService));
    napi_set_element(env, out, i, row);
  }
  return out;
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  TablePtr& t = static_cast<BoundPtr*>(data)->get()->table;
  {
    Registry& reg = TheRegistry();
    std::lock_guard<std::mutex> g(reg.lock);
    reg.tables.erase(t->id());
  }
  t->Close();
  return Undefined(env);
}

void FreeHolder(napi_env /*env*/, void* data, void* /*hint*/) { delete static_cast<BoundPtr*>(data); }

// Each function owns a reference to the table, dropped when the function is collected or
// its thread's environment is torn down (a worker exiting), so no call ever sees a freed table.
napi_value Bind(napi_env env, const TablePtr& t) {
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  static const Fn fns[] = {
      {"register", Register},     {"registerLast", RegisterLast},
      {"unregister", Unregister}, {"prune", Prune},
      {"select", Select},         {"selectInstance", SelectInstance},
      {"hashHeader", HashHeader}, {"routeService", RouteService}, {"release", Release},       {"markFailed", MarkFailed},
      {"inFlight", InFlight},     {"endpoint", Endpoint},     {"stats", Stats},
      {"dump", Dump},             {"close", Close},
  };
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "id", MakeNum(env, t->id()));
  auto bound = std::make_shared<Bound>();
  bound->table = t;
  for (const Fn& f : fns) {
    auto* holder = new BoundPtr(bound);
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, holder, &fn);
    napi_add_finalizer(env, fn, holder, FreeHolder, nullptr, nullptr);
    napi_set_named_property(env, obj, f.name, fn);
  }
  return obj;
}

// createRouteTable(emptyPoolTimeoutMs) -> the new table's functions.
napi_value CreateRouteTable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  const double emptyPoolTimeoutMs = argc < 1 ? 0 : Num(env, arg);
  Registry& reg = TheRegistry();
  TablePtr t;
  {
    std::lock_guard<std::mutex> g(reg.lock);
    uint32_t id = reg.nextId++;
    t = std::make_shared<Table>(id, emptyPoolTimeoutMs);
    reg.tables.emplace(id, t);
  }
  return Bind(env, t);
}

// attachRouteTable(id) -> the same table's functions in this thread, or undefined.
napi_value AttachRouteTable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  if (argc < 1) return Undefined(env);
  TablePtr t = FindRouteTable(static_cast<uint32_t>(Num(env, arg)));
  if (!t) return Undefined(env);
  return Bind(env, t);
}

}  // namespace

std::shared_ptr<rt::Table> FindRouteTable(uint32_t id) {
  Registry& reg = TheRegistry();
  std::lock_guard<std::mutex> g(reg.lock);
  auto it = reg.tables.find(id);
  return it == reg.tables.end() ? nullptr : it->second;
}

void InitRouteTable(Napi::Env env, Napi::Object exports) {
  napi_value create, attach;
  napi_create_function(env, "createRouteTable", NAPI_AUTO_LENGTH, CreateRouteTable, nullptr, &create);
  napi_create_function(env, "attachRouteTable", NAPI_AUTO_LENGTH, AttachRouteTable, nullptr, &attach);
  exports.Set("createRouteTable", Napi::Value(env, create));
  exports.Set("attachRouteTable", Napi::Value(env, attach));
}

}  // namespace kiln
