// Registration hooks of the addon's concerns; addon.cc calls InitModules once per
// JavaScript environment (main thread and every worker thread).
#pragma once
#include <napi.h>

namespace kiln {

// Bumped whenever the JavaScript-visible interface of the addon changes, so a
// stale build/ is detected by native/index.ts instead of failing in odd ways.
constexpr int kAddonAbi = 1;

void InitModules(Napi::Env env, Napi::Object exports);

}  // namespace kiln
