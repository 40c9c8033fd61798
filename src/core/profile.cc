#include "qdit/core/profile.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace qdit::profile {

namespace detail {
std::atomic<bool> g_enabled{false};
thread_local int t_depth = 0;

namespace {
std::mutex& mu() {
  static std::mutex m;
  return m;
}
// Keyed by the name's pointer (string literals), merged by text in totals().
std::unordered_map<const char*, OpTotal>& table() {
  static std::unordered_map<const char*, OpTotal> t;
  return t;
}
}  // namespace

void record(const char* name, double seconds, double flops) {
  std::lock_guard<std::mutex> lock(mu());
  OpTotal& t = table()[name];
  t.calls += 1;
  t.seconds += seconds;
  t.flops += flops;
}
}  // namespace detail

void set_enabled(bool on) { detail::g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  std::lock_guard<std::mutex> lock(detail::mu());
  detail::table().clear();
}

std::vector<OpTotal> totals() {
  std::unordered_map<std::string, OpTotal> merged;
  {
    std::lock_guard<std::mutex> lock(detail::mu());
    for (const auto& [key, t] : detail::table()) {
      OpTotal& m = merged[key];
      m.name = key;
      m.calls += t.calls;
      m.seconds += t.seconds;
      m.flops += t.flops;
    }
  }
  std::vector<OpTotal> out;
  for (auto& [k, t] : merged) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const OpTotal& a, const OpTotal& b) { return a.seconds > b.seconds; });
  return out;
}

}  // namespace qdit::profile
