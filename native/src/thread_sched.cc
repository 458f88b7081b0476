// setThreadScheduling(policy, sliceUs): the Linux scheduling of the calling thread.
//
// Policy. The router's worker threads can ask for SCHED_BATCH (`--scheduling batch`). With
// it, a worker woken by a socket does not preempt whatever runs on that core; it runs when
// that task blocks or its slice ends, and by then more sockets are ready, so one wake-up
// serves more requests. Beside I/O-bound neighbours (the bench's load generator and backend)
// that cut context switches from 0.47 to 0.38 per proxied request (HAProxy's figure) and
// raised req/s about 6% at the same p99. Beside CPU-bound neighbours it costs latency: with
// two busy loops on the 2 cores, p99 went from 4.5-4.6 ms to 6.0-7.7 ms. So the default
// stays SCHED_OTHER ("normal").
//
// Slice. Since Linux 6.12 the fair scheduler (EEVDF) takes a per-thread slice request in
// sched_attr.sched_runtime (clamped to 0.1-100 ms; the default is 0.7 ms times 1 + log2 of
// the core count). A thread's virtual deadline is its slice away, so a worker asking for a
// short one is picked, and may preempt the running task, as soon as a socket wakes it: the
// request waits less for a core. Its share of the CPU is unchanged (that is the weight, from
// the nice value); it runs in shorter turns. A request's p99 on this 2-core box is mostly
// such waiting (bench/RESULTS.md), hence `--slice-us`, 100 by default. 0 keeps the slice
// the thread started with (the kernel's, unless the router's parent asked for another).
// Older kernels accept and ignore the field; sched_getattr then reports no slice, and so
// does threadScheduling.
//
// Neither needs privilege: the thread keeps its nice value, and moving between SCHED_OTHER
// and SCHED_BATCH or shortening its own slice is open to any thread.
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#ifdef __linux__
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "modules.h"

namespace kiln {
namespace {

#ifdef __linux__
// The kernel's struct sched_attr (include/uapi/linux/sched/types.h, SCHED_ATTR_SIZE_VER1).
// glibc 2.36 has no wrapper and its headers no type, so the layout is spelled out here.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

// The calling thread's attributes → 0, or the errno.
int GetAttr(SchedAttr* attr) {
  std::memset(attr, 0, sizeof(*attr));
  return syscall(SYS_sched_getattr, 0, attr, sizeof(*attr), 0) == 0 ? 0 : errno;
}
#endif

// policy "batch" | "normal", slice in µs (0: keep the thread's) → 0, or the errno of the refusal
// (ENOTSUP off Linux, EINVAL for a bad name).
int Apply(const std::string& policy, uint32_t slice_us) {
#ifdef __linux__
  uint32_t p;
  if (policy == "batch") {
    p = SCHED_BATCH;
  } else if (policy == "normal") {
    p = SCHED_OTHER;
  } else {
    return EINVAL;
  }
  // sched_setattr sets policy, nice and slice at once: start from the thread's own so its
  // nice value, and its slice unless one is asked for, stay what they were.
  SchedAttr attr;
  if (int err = GetAttr(&attr); err != 0) return err;
  attr.size = sizeof(attr);
  attr.sched_policy = p;
  attr.sched_flags = 0;
  attr.sched_priority = 0;
  if (slice_us != 0) attr.sched_runtime = static_cast<uint64_t>(slice_us) * 1000;
  attr.sched_deadline = 0;
  attr.sched_period = 0;
  return syscall(SYS_sched_setattr, 0, &attr, 0) == 0 ? 0 : errno;
#else
  (void)policy;
  (void)slice_us;
  return ENOTSUP;
#endif
}

// setThreadScheduling(policy: string, sliceUs: number) → "" when applied, else why not.
Napi::Value SetThreadScheduling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "setThreadScheduling(policy: string, sliceUs: number)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = Apply(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Uint32Value());
  return Napi::String::New(env, err == 0 ? "" : std::strerror(err));
}

// threadScheduling() → { policy: "batch" | "normal" | "other", sliceUs }: the calling
// thread's policy as the kernel has it, and its slice (0 where the kernel reports none).
Napi::Value ThreadScheduling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* name = "other";
  double slice_us = 0;
#ifdef __linux__
  SchedAttr attr;
  if (GetAttr(&attr) == 0) {
    if (attr.sched_policy == SCHED_BATCH) name = "batch";
    if (attr.sched_policy == SCHED_OTHER) name = "normal";
    slice_us = static_cast<double>(attr.sched_runtime / 1000);
  }
#endif
  Napi::Object out = Napi::Object::New(env);
  out.Set("policy", Napi::String::New(env, name));
  out.Set("sliceUs", Napi::Number::New(env, slice_us));
  return out;
}

}  // namespace

void InitThreadScheduling(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadScheduling", Napi::Function::New(env, SetThreadScheduling, "setThreadScheduling"));
  exports.Set("threadScheduling", Napi::Function::New(env, ThreadScheduling, "threadScheduling"));
}

}  // namespace kiln
