// The router's upstream hop in C++: keep-alive HTTP/1.1 connection pools to backends on
// this thread's libuv loop, exported to JavaScript as the `Upstream` class.
#pragma once
#include <napi.h>

namespace kiln {

void InitUpstream(Napi::Env env, Napi::Object exports);

}  // namespace kiln
