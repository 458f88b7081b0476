// The list of concerns exported by the addon.
#include "modules.h"

namespace kiln {

void InitModules(Napi::Env env, Napi::Object exports) {
  InitRouteTable(env, exports);
  InitUpstream(env, exports);
  InitFastBackend(env, exports);
  InitThreadScheduling(env, exports);
}

}  // namespace kiln
