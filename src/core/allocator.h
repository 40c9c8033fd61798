// CPU allocator with accounting: every byte qdit allocates is tagged (weights, activations,
// workspace, ...) and the allocator keeps live and peak bytes per tag and in total, so the
// runtime can report and the planner can be checked against what really happened.
// Buffers are 64-byte aligned; large ones (>= 2 MiB) are mapped on their own, 2 MiB aligned with
// huge pages advised on their whole 2 MiB pages, and unmapped when freed, so the RSS follows the
// live bytes.
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
  // Buffers obtained from the system (malloc / mmap) so far; buffers handed out again by a
  // RecyclingScope do not count.
  size_t system_allocations() const { return system_allocations_.load(std::memory_order_relaxed); }
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
  std::atomic<size_t> system_allocations_{0};
  friend class RecyclingScope;
};

// While one is alive, freed activation and workspace buffers are kept (by exact rounded size) and
// handed out again instead of going back to the system: a loop that allocates the same shapes each
// iteration (the denoising steps) allocates nothing after its first pass. Weights are never kept
// (streamed blocks must leave memory). The kept buffers are released when the last scope ends.
// Costs RSS: up to the sum over sizes of the most buffers of that size alive at once.
class RecyclingScope {
 public:
  RecyclingScope();
  ~RecyclingScope();
  RecyclingScope(const RecyclingScope&) = delete;
  RecyclingScope& operator=(const RecyclingScope&) = delete;
};

// Process peak resident set size (VmHWM) and current RSS, in bytes; 0 if unavailable.
size_t process_peak_rss();
size_t process_current_rss();
// Physical memory of this machine (MemTotal), or the cgroup's memory limit when lower; 0 if unknown.
size_t machine_memory_bytes();

}  // namespace qdit
