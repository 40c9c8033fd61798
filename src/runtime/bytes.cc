#include "qdit/runtime/bytes.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "qdit/core/error.h"

namespace qdit::runtime {

size_t parse_bytes(const std::string& text, const std::string& what) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    fail("[", what, "] expected a size such as 2GiB, 1500MB or 123456, got '", text, "'");
  }
  std::string unit;
  for (size_t i = pos; i < text.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(text[i]))) unit += static_cast<char>(std::toupper(text[i]));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KIB") scale = 1024.0;
  else if (unit == "M" || unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TIB") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "TB") scale = 1e12;
  QDIT_CHECK(scale > 0, "[", what, "] unknown unit '", text.substr(pos), "' in '", text,
             "' (use B, KiB/MiB/GiB/TiB or K/M/G/T, KB/MB/GB/TB)");
  QDIT_CHECK(std::isfinite(value) && value >= 0, "[", what, "] expected a non-negative size, got '", text, "'");
  return static_cast<size_t>(std::llround(value * scale));
}

std::string format_bytes(size_t bytes) {
  char buf[48];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%zu B", bytes);
  return buf;
}

}  // namespace qdit::runtime
