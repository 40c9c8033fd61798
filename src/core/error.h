// qdit::Error is the one exception type of the library. Messages start with "[where]" (an op,
// a file, a tensor or a config key) and say what was expected and what was found.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace qdit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace qdit

// QDIT_CHECK(cond, "[op] ", "message parts", ...) throws qdit::Error when cond is false.
#define QDIT_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::qdit::fail(__VA_ARGS__); \
  } while (0)
