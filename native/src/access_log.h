// The access log of the native request path: the same line as router/access-log.ts writes
// (time, host, method, path, status, bytes, duration, backend, request id), formatted in C++
// into a buffer and written to the same file descriptor in large pieces. Each write holds
// whole lines, so lines from the JavaScript path and other threads never interleave
// within a line (the file is opened O_APPEND).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln {

class AccessLogWriter {
 public:
  /** `fd` < 0: no log. The descriptor is not owned (router/access-log.ts closes it). */
  explicit AccessLogWriter(int fd);
  ~AccessLogWriter() { Flush(); }
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  bool on() const { return fd_ >= 0; }
  void Line(double startMs, std::string_view host, std::string_view method, std::string_view target, int status,
            double bytes, double durationMs, std::string_view backend, std::string_view requestId,
            std::string_view client);
  /**
   * Writes what is buffered without ever waiting: what the target does not take now (a
   * stdout pipe nobody reads) stays for the next flush, and while it is held new lines
   * beyond kMaxHeld are dropped and counted. A broken target never stops the router:
   * errors drop the buffer.
   */
  void Flush();
  /** Lines dropped because the target would not take them (kiln_router_access_log_dropped_lines_total). */
  double dropped() const { return dropped_; }

 private:
  int fd_;
  bool pipe_ = false;  // a pipe or socket: written in whole lines of at most PIPE_BUF bytes
  std::string buf_;
  bool stalled_ = false;  // the last flush left bytes behind: only the next flush tries again
  double dropped_ = 0;
  int64_t lastMs_ = -1;
  int64_t lastSecond_ = INT64_MIN;
  char secondText_[24] = {0};
  char stamp_[32] = {0};
  size_t stampLen_ = 0;
};

}  // namespace kiln
