// Op-level timers for benchmarks (qdit bench-step): when enabled, instrumented kernel entry points
// add their wall time, call count and FLOPs (where counted) under a static name. Only the
// outermost scope on a thread records, so a kernel that calls another is not counted twice.
// Disabled (the default) a scope costs one relaxed atomic load.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace qdit::profile {

namespace detail {
extern std::atomic<bool> g_enabled;
extern thread_local int t_depth;
void record(const char* name, double seconds, double flops);
}  // namespace detail

inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
void reset();

struct OpTotal {
  std::string name;
  int64_t calls = 0;
  double seconds = 0, flops = 0;
};
// Totals since the last reset(), largest time first.
std::vector<OpTotal> totals();

// Times the enclosing block under `name` (a string literal: it is stored by pointer).
class Scope {
 public:
  explicit Scope(const char* name, double flops = 0) {
    if (!enabled()) return;
    active_ = true;
    if (detail::t_depth++ != 0) return;  // nested: the outer scope has the time
    name_ = name;
    flops_ = flops;
    t0_ = std::chrono::steady_clock::now();
  }
  ~Scope() {
    if (!active_) return;
    --detail::t_depth;
    if (name_)
      detail::record(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(), flops_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_ = nullptr;
  bool active_ = false;
  double flops_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace qdit::profile
