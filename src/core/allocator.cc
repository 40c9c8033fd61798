#include "qdit/core/allocator.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>

#include "qdit/core/error.h"

namespace qdit {

const char* mem_tag_name(MemTag t) {
  switch (t) {
    case MemTag::Weights: return "weights";
    case MemTag::Activations: return "activations";
    case MemTag::Workspace: return "workspace";
    case MemTag::Other: return "other";
  }
  return "?";
}

CpuAllocator& CpuAllocator::instance() {
  static CpuAllocator a;
  return a;
}

namespace {
void raise_peak(std::atomic<size_t>& peak, size_t value) {
  size_t cur = peak.load(std::memory_order_relaxed);
  while (value > cur && !peak.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
  }
}
}  // namespace

namespace {
size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Large buffers are mapped on their own (2 MiB aligned, huge pages advised) and unmapped when
// freed: the process's RSS then follows the tracked bytes. Left to malloc, they were carved from
// arenas (a prefetch thread's among them) whose freed pages stayed resident, so RSS drifted
// hundreds of MiB above what was live and peak memory could not be planned.
void* map_huge(size_t bytes) {
  const size_t len = round_up(bytes, CpuAllocator::kHugePageThreshold), align = CpuAllocator::kHugePageThreshold;
  void* raw = ::mmap(nullptr, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw), aligned = round_up(begin, align);
  if (aligned > begin) ::munmap(raw, aligned - begin);
  if (begin + len + align > aligned + len)
    ::munmap(reinterpret_cast<void*>(aligned + len), begin + len + align - (aligned + len));
  ::madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}
}  // namespace

void* CpuAllocator::allocate(size_t bytes, MemTag tag) {
  if (bytes == 0) bytes = 1;
  const bool huge = bytes >= kHugePageThreshold;
  void* p = huge ? map_huge(bytes) : std::aligned_alloc(kAlignment, round_up(bytes, kAlignment));
  if (!p) fail("[allocator] out of memory allocating ", bytes, " bytes for ", mem_tag_name(tag));
  const auto i = static_cast<size_t>(tag);
  raise_peak(peak_[i], live_[i].fetch_add(bytes, std::memory_order_relaxed) + bytes);
  raise_peak(total_peak_, total_live_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  return p;
}

void CpuAllocator::deallocate(void* p, size_t bytes, MemTag tag) {
  if (!p) return;
  if (bytes == 0) bytes = 1;
  if (bytes >= kHugePageThreshold) ::munmap(p, round_up(bytes, kHugePageThreshold));
  else std::free(p);
  live_[static_cast<size_t>(tag)].fetch_sub(bytes, std::memory_order_relaxed);
  total_live_.fetch_sub(bytes, std::memory_order_relaxed);
}

MemStats CpuAllocator::stats() const {
  MemStats s;
  for (size_t i = 0; i < kMemTagCount; ++i) {
    s.live[i] = live_[i].load();
    s.peak[i] = peak_[i].load();
  }
  s.total_live = total_live_.load();
  s.total_peak = total_peak_.load();
  return s;
}

void CpuAllocator::reset_peaks() {
  for (size_t i = 0; i < kMemTagCount; ++i) peak_[i].store(live_[i].load());
  total_peak_.store(total_live_.load());
}

std::string CpuAllocator::report() const {
  const MemStats s = stats();
  std::ostringstream os;
  auto mib = [](size_t b) { return static_cast<double>(b) / (1 << 20); };
  char buf[128];
  for (size_t i = 0; i < kMemTagCount; ++i) {
    std::snprintf(buf, sizeof buf, "%-12s live %9.1f MiB  peak %9.1f MiB\n",
                  mem_tag_name(static_cast<MemTag>(i)), mib(s.live[i]), mib(s.peak[i]));
    os << buf;
  }
  std::snprintf(buf, sizeof buf, "%-12s live %9.1f MiB  peak %9.1f MiB\n", "total",
                mib(s.total_live), mib(s.total_peak));
  os << buf;
  return os.str();
}

namespace {
size_t read_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = key;
  while (std::getline(f, line)) {
    if (line.compare(0, k.size(), k) == 0) return std::stoull(line.substr(k.size())) * 1024;
  }
  return 0;
}
}  // namespace

size_t process_peak_rss() { return read_status_kb("VmHWM:"); }
size_t process_current_rss() { return read_status_kb("VmRSS:"); }

}  // namespace qdit
