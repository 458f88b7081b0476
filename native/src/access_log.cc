// See access_log.h; each piece names its twin in router/access-log.ts.
#include "access_log.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>

namespace kiln {

namespace {

constexpr size_t kFlushAt = 64 * 1024;
// What is held while the target takes nothing: router/access-log.ts keeps one 128 KiB buffer.
constexpr size_t kMaxHeld = 128 * 1024;

void AppendInt(std::string* out, int64_t v) {
  char d[24];
  int n = 0;
  bool neg = v < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
  do {
    d[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (neg) out->push_back('-');
  while (n > 0) out->push_back(d[--n]);
}

// router/access-log.ts millis: `ms.toFixed(3)` for a duration.
void AppendMillis(std::string* out, double ms) {
  auto us = static_cast<int64_t>(std::floor(ms * 1000 + 0.5));  // Math.round
  int64_t whole = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
  int64_t frac = us - whole * 1000;
  AppendInt(out, whole);
  out->push_back('.');
  if (frac < 100) out->push_back('0');
  if (frac < 10) out->push_back('0');
  AppendInt(out, frac);
}

// router/access-log.ts pipePieceEnd: a write of at most PIPE_BUF bytes to a pipe goes in
// whole or not at all, so other workers writing the same pipe cannot land inside a line. The
// end of the next piece from `off`: whole lines up to 4096 bytes, or one longer line alone.
constexpr size_t kPipeAtomic = 4096;
size_t PipePieceEnd(const std::string& data, size_t off) {
  const size_t limit = off + kPipeAtomic;
  if (limit >= data.size()) return data.size();
  const size_t nl = data.rfind('\n', limit - 1);
  if (nl != std::string::npos && nl >= off) return nl + 1;
  const size_t next = data.find('\n', limit);
  return next == std::string::npos ? data.size() : next + 1;
}

}  // namespace

AccessLogWriter::AccessLogWriter(int fd) : fd_(fd) {
  struct stat st;
  if (fd_ >= 0 && fstat(fd_, &st) == 0) pipe_ = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
}

void AccessLogWriter::Line(double startMs, std::string_view host, std::string_view method, std::string_view target,
                           int status, double bytes, double durationMs, std::string_view backend,
                           std::string_view requestId, std::string_view client) {
  if (fd_ < 0) return;
  auto ms = static_cast<int64_t>(startMs);
  if (ms != lastMs_) {
    lastMs_ = ms;
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    if (sec != lastSecond_) {
      lastSecond_ = sec;
      time_t t = static_cast<time_t>(sec);
      tm parts;
      gmtime_r(&t, &parts);
      strftime(secondText_, sizeof(secondText_), "%Y-%m-%dT%H:%M:%S", &parts);
    }
    int rest = static_cast<int>(ms - sec * 1000);
    int n = std::snprintf(stamp_, sizeof(stamp_), "%s.%03dZ ", secondText_, rest);
    stampLen_ = n > 0 ? static_cast<size_t>(n) : 0;
  }
  std::string& b = buf_;
  const size_t before = b.size();
  b.append(stamp_, stampLen_);
  b.append(host.empty() ? std::string_view("-") : host).append(" \"");
  b.append(method).push_back(' ');
  b.append(target).append("\" ");
  AppendInt(&b, status);
  b.push_back(' ');
  AppendInt(&b, static_cast<int64_t>(bytes));
  b.push_back(' ');
  AppendMillis(&b, durationMs);
  b.append("ms backend=").append(backend.empty() ? std::string_view("-") : backend);
  b.append(" request_id=").append(requestId.empty() ? std::string_view("-") : requestId);
  b.append(" client=").append(client.empty() ? std::string_view("-") : client).push_back('\n');
  if (stalled_) {
    // The target is not taking bytes: hold up to kMaxHeld for when it does, drop the rest.
    if (b.size() > kMaxHeld) {
      b.resize(before);
      dropped_++;
    }
    return;
  }
  if (b.size() >= kFlushAt) Flush();
}

void AccessLogWriter::Flush() {
  size_t off = 0;
  while (off < buf_.size()) {
    const size_t end = pipe_ ? PipePieceEnd(buf_, off) : buf_.size();
    ssize_t n = write(fd_, buf_.data() + off, end - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Never wait: this thread serves requests. The rest goes out on a later flush
      // (router/proxy/fast.ts calls flushLog every 250 ms, take() every second).
      buf_.erase(0, off);
      stalled_ = true;
      return;
    } else {
      break;
    }
  }
  buf_.clear();
  stalled_ = false;
}

}  // namespace kiln
