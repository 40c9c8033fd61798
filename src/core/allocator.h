// CPU allocator with accounting: every byte qdit allocates is tagged (weights, activations,
// workspace, ...) and the allocator keeps live and peak bytes per tag and in total, so the
// runtime can report and the planner can be checked against what really happened.
// Buffers are 64-byte aligned; large ones (>= 2 MiB) are mapped on their own, 2 MiB aligned with
// huge pages advised, and unmapped when freed, so the RSS follows the live bytes.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <string>

namespace qdit {

enum class MemTag : uint8_t { Weights, Activations, Workspace, Other };
constexpr size_t kMemTagCount = 4;
const char* mem_tag_name(MemTag t);

struct MemStats {
  std::array<size_t, kMemTagCount> live{};
  std::array<size_t, kMemTagCount> peak{};
  size_t total_live = 0;
  size_t total_peak = 0;
};

class CpuAllocator {
 public:
  static CpuAllocator& instance();

  void* allocate(size_t bytes, MemTag tag);
  void deallocate(void* p, size_t bytes, MemTag tag);

  MemStats stats() const;
  // Forget peaks (set them to the current live values), e.g. at the start of a phase.
  void reset_peaks();
  std::string report() const;

  static constexpr size_t kAlignment = 64;
  static constexpr size_t kHugePageThreshold = 2u << 20;

 private:
  CpuAllocator() = default;
  std::array<std::atomic<size_t>, kMemTagCount> live_{};
  std::array<std::atomic<size_t>, kMemTagCount> peak_{};
  std::atomic<size_t> total_live_{0};
  std::atomic<size_t> total_peak_{0};
};

// Process peak resident set size (VmHWM) and current RSS, in bytes; 0 if unavailable.
size_t process_peak_rss();
size_t process_current_rss();

}  // namespace qdit
