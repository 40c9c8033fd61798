#include "qdit/core/memory_meter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "qdit/core/allocator.h"

namespace qdit {

bool reset_process_peak_rss() {
  const int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

RssPeakMeter::RssPeakMeter() {
  if (reset_process_peak_rss()) return;
  sampled_peak_ = process_current_rss();
  sampler_ = std::thread([this] {
    while (!stop_.load(std::memory_order_relaxed)) {
      const size_t now = process_current_rss();
      size_t cur = sampled_peak_.load(std::memory_order_relaxed);
      while (now > cur && !sampled_peak_.compare_exchange_weak(cur, now, std::memory_order_relaxed)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
}

RssPeakMeter::~RssPeakMeter() {
  stop_ = true;
  if (sampler_.joinable()) sampler_.join();
}

size_t RssPeakMeter::peak() const {
  if (!sampler_.joinable()) return process_peak_rss();
  return std::max(sampled_peak_.load(), process_current_rss());
}

}  // namespace qdit
