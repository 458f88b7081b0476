// Registration hooks of the addon's concerns; addon.cc calls InitModules once per
// JavaScript environment (main thread and every worker thread).
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>

namespace kiln {

// Bumped whenever the JavaScript-visible interface of the addon changes, so a
// stale build/ is detected by native/index.ts instead of failing in odd ways.
constexpr int kAddonAbi = 4;

void InitModules(Napi::Env env, Napi::Object exports);

// native/src/route_table_napi.cc: createRouteTable(), attachRouteTable(id).
void InitRouteTable(Napi::Env env, Napi::Object exports);

namespace rt {
class Table;
}
// The shared table with this id (as attachRouteTable), or null.
std::shared_ptr<rt::Table> FindRouteTable(uint32_t id);

// native/src/fast_backend.cc: the FastBackend class (the native request path's kiln_native side).
void InitFastBackend(Napi::Env env, Napi::Object exports);

// native/src/thread_sched.cc: setThreadScheduling(policy, sliceUs), threadScheduling().
void InitThreadScheduling(Napi::Env env, Napi::Object exports);

// native/src/upstream.cc: the Upstream class (keep-alive HTTP/1.1 client to backends).
void InitUpstream(Napi::Env env, Napi::Object exports);

}  // namespace kiln
