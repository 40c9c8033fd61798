// Byte sizes as users write them ("2GiB", "1.5G", "800MB", "123456") and as qdit prints them.
#pragma once
#include <cstddef>
#include <string>

namespace qdit::runtime {

// K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000, B or nothing bytes;
// case-insensitive, a fractional number is allowed. Throws naming `what` on anything else.
size_t parse_bytes(const std::string& text, const std::string& what = "size");
// "1.23 GiB", "456.7 MiB", "12.0 KiB" or "512 B".
std::string format_bytes(size_t bytes);

}  // namespace qdit::runtime
