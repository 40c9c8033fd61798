#include "qdit/core/allocator.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <unordered_map>
#include <vector>
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

namespace {
// glibc raises its mmap threshold (up to 32 MiB) every time a mapped chunk is freed, after which
// large temporary buffers of the libraries (oneDNN's GEMM packing copies, several MiB per call)
// come from arenas whose freed pages stay resident. A fixed threshold maps them and gives them
// back on free, so the RSS of a phase is its live memory plus a steady baseline.
const bool g_fixed_mmap_threshold = [] {
#ifdef __GLIBC__
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(CpuAllocator::kHugePageThreshold)) == 1;
#else
  return false;
#endif
}();
}  // namespace

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
// Huge pages are advised only for the whole 2 MiB pages of the buffer: a transparent huge page
// is resident as a whole, so a 2.6 MB weight in a rounded-up 4 MiB mapping cost 4 MiB of RSS
// (about 0.5 GB over the tracked bytes for the PixArt-XL transformer). The tail stays in 4 KiB
// pages.
size_t mapped_length(size_t bytes) { return round_up(bytes, 4096); }

void* map_huge(size_t bytes) {
  const size_t len = mapped_length(bytes), align = CpuAllocator::kHugePageThreshold;
  void* raw = ::mmap(nullptr, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw), aligned = round_up(begin, align);
  if (aligned > begin) ::munmap(raw, aligned - begin);
  if (begin + len + align > aligned + len)
    ::munmap(reinterpret_cast<void*>(aligned + len), begin + len + align - (aligned + len));
  const size_t whole_huge_pages = len / align * align;
  if (whole_huge_pages > 0) ::madvise(reinterpret_cast<void*>(aligned), whole_huge_pages, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

// The buffers kept by RecyclingScope, by the size the system gave them (64-byte rounded; 4 KiB
// for mapped buffers). `scopes` is read without the lock first, so that allocations outside any
// scope (loading, text encoding) never touch the mutex.
struct RecyclePool {
  std::mutex mu;
  std::atomic<int> scopes{0};
  std::unordered_map<size_t, std::vector<void*>> free_by_size;
};
RecyclePool& recycle_pool() {
  static RecyclePool pool;
  return pool;
}
bool recyclable(MemTag tag) { return tag == MemTag::Activations || tag == MemTag::Workspace; }
size_t system_size(size_t bytes) {
  return bytes >= CpuAllocator::kHugePageThreshold ? mapped_length(bytes)
                                                   : round_up(bytes, CpuAllocator::kAlignment);
}
void release_to_system(void* p, size_t bytes) {
  if (bytes >= CpuAllocator::kHugePageThreshold) ::munmap(p, mapped_length(bytes));
  else std::free(p);
}
// A kept buffer of this size, or null (also when no scope is alive).
void* take_recycled(size_t bytes, MemTag tag) {
  RecyclePool& pool = recycle_pool();
  if (!recyclable(tag) || pool.scopes.load(std::memory_order_relaxed) == 0) return nullptr;
  std::lock_guard<std::mutex> lock(pool.mu);
  if (pool.scopes == 0) return nullptr;
  auto it = pool.free_by_size.find(system_size(bytes));
  if (it == pool.free_by_size.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  return p;
}
bool keep_recycled(void* p, size_t bytes, MemTag tag) {
  RecyclePool& pool = recycle_pool();
  if (!recyclable(tag) || pool.scopes.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard<std::mutex> lock(pool.mu);
  if (pool.scopes == 0) return false;
  pool.free_by_size[system_size(bytes)].push_back(p);
  return true;
}
}  // namespace

RecyclingScope::RecyclingScope() {
  RecyclePool& pool = recycle_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  ++pool.scopes;
}

RecyclingScope::~RecyclingScope() {
  RecyclePool& pool = recycle_pool();
  std::unordered_map<size_t, std::vector<void*>> kept;
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (--pool.scopes > 0) return;
    kept.swap(pool.free_by_size);
  }
  for (auto& [size, ptrs] : kept)
    for (void* p : ptrs) release_to_system(p, size);
}

namespace {
void* system_allocate(size_t bytes) {
  return bytes >= CpuAllocator::kHugePageThreshold ? map_huge(bytes)
                                                   : std::aligned_alloc(CpuAllocator::kAlignment,
                                                                        round_up(bytes, CpuAllocator::kAlignment));
}
}  // namespace

void* CpuAllocator::allocate(size_t bytes, MemTag tag) {
  if (bytes == 0) bytes = 1;
  void* p = take_recycled(bytes, tag);
  if (!p) {
    p = system_allocate(bytes);
    if (!p) fail("[allocator] out of memory allocating ", bytes, " bytes for ", mem_tag_name(tag));
    system_allocations_.fetch_add(1, std::memory_order_relaxed);
  }
  const auto i = static_cast<size_t>(tag);
  raise_peak(peak_[i], live_[i].fetch_add(bytes, std::memory_order_relaxed) + bytes);
  raise_peak(total_peak_, total_live_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  return p;
}

void CpuAllocator::deallocate(void* p, size_t bytes, MemTag tag) {
  if (!p) return;
  if (bytes == 0) bytes = 1;
  if (!keep_recycled(p, bytes, tag)) release_to_system(p, bytes);
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

size_t machine_memory_bytes() {
  size_t total = 0;
  {
    std::ifstream f("/proc/meminfo");
    std::string key;
    size_t kb = 0;
    if (f >> key >> kb && key == "MemTotal:") total = kb * 1024;
  }
  // A container's limit (cgroup v2), when set and lower.
  std::ifstream g("/sys/fs/cgroup/memory.max");
  std::string limit;
  if (g >> limit && limit != "max") {
    try {
      const size_t cg = std::stoull(limit);
      if (cg > 0 && (total == 0 || cg < total)) total = cg;
    } catch (const std::exception&) {
    }
  }
  return total;
}

}  // namespace qdit
