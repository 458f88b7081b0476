// Entry point of the kiln_native addon: each concern registers its exports here.
// The addon is context-aware (one instance per worker thread); shared state lives
// in process-wide objects owned by the concern that needs it.
#include <napi.h>

#include "modules.h"

namespace {

Napi::Value AddonInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("abi", Napi::Number::New(env, kiln::kAddonAbi));
  out.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("addonInfo", Napi::Function::New(env, AddonInfo, "addonInfo"));
  kiln::InitModules(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln_native, Init)
