// setThreadScheduling(policy): the Linux scheduling policy of the calling thread.
//
// The router's worker threads can ask for SCHED_BATCH (`--scheduling batch`). With it, a
// worker woken by a socket does not preempt whatever runs on that core; it runs when that
// task blocks or its slice ends, and by then more sockets are ready, so one wake-up serves
// more requests. Beside I/O-bound neighbours (the bench's load generator and backend) that
// cut context switches from 0.47 to 0.38 per proxied request (HAProxy's figure) and raised
// req/s about 6% at the same p99. Beside CPU-bound neighbours it costs latency: with two busy
// loops on the 2 cores, p99 went from 4.5-4.6 ms to 6.0-7.7 ms. So the default stays
// SCHED_OTHER ("normal"); bench/RESULTS.md has the runs. Moving between SCHED_OTHER and
// SCHED_BATCH needs no privilege; the nice value is unchanged.
#include <napi.h>
#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "modules.h"

namespace kiln {
namespace {

// "batch" | "normal" → 0, or the errno of the refusal (ENOTSUP off Linux, EINVAL for a bad name).
int Apply(const std::string& policy) {
#ifdef __linux__
  int p;
  if (policy == "batch") {
    p = SCHED_BATCH;
  } else if (policy == "normal") {
    p = SCHED_OTHER;
  } else {
    return EINVAL;
  }
  sched_param param{};
  param.sched_priority = 0;
  return pthread_setschedparam(pthread_self(), p, &param);
#else
  (void)policy;
  return ENOTSUP;
#endif
}

// → "" when applied, else why not.
Napi::Value SetThreadScheduling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "setThreadScheduling(policy: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = Apply(info[0].As<Napi::String>().Utf8Value());
  return Napi::String::New(env, err == 0 ? "" : std::strerror(err));
}

// → the calling thread's policy: "batch", "normal" or "other".
Napi::Value ThreadScheduling(const Napi::CallbackInfo& info) {
  int p = 0;
  sched_param param{};
  const char* name = "other";
  if (pthread_getschedparam(pthread_self(), &p, &param) == 0) {
#ifdef __linux__
    if (p == SCHED_BATCH) name = "batch";
#endif
    if (p == SCHED_OTHER) name = "normal";
  }
  return Napi::String::New(info.Env(), name);
}

}  // namespace

void InitThreadScheduling(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadScheduling", Napi::Function::New(env, SetThreadScheduling, "setThreadScheduling"));
  exports.Set("threadScheduling", Napi::Function::New(env, ThreadScheduling, "threadScheduling"));
}

}  // namespace kiln
