// Peak resident-set measurement over an interval (a pipeline phase, a bench run). The kernel's
// VmHWM only grows, so a meter first resets it through /proc/self/clear_refs ("5"); where that
// is not allowed it samples VmRSS from a background thread instead (every 2 ms, so a peak
// shorter than that can be missed).
#pragma once
#include <atomic>
#include <cstddef>
#include <thread>

namespace qdit {

// Sets VmHWM back to the current RSS; false where the kernel refuses (old kernels, sandboxes).
bool reset_process_peak_rss();

class RssPeakMeter {
 public:
  RssPeakMeter();
  ~RssPeakMeter();
  RssPeakMeter(const RssPeakMeter&) = delete;
  RssPeakMeter& operator=(const RssPeakMeter&) = delete;
  // Highest RSS since construction, in bytes (0 where /proc is unavailable).
  size_t peak() const;
  bool sampled() const { return sampler_.joinable(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<size_t> sampled_peak_{0};
  std::thread sampler_;
};

}  // namespace qdit
