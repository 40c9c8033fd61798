// Byte-level BPE pieces for ClipTokenizer: GPT-2's bytes_to_unicode table, merges.txt loading and
// the merge loop of transformers' CLIPTokenizer.bpe, reproduced pass for pass (each pass merges
// every occurrence of the lowest-ranked pair, left to right) in O(n log n) instead of O(n^2).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qdit::tokenizers {

// byte -> UTF-8 of its printable stand-in (GPT-2 / CLIP bytes_to_unicode).
const std::array<std::string, 256>& bytes_to_unicode();

class BpeMerges {
 public:
  // CLIPTokenizer reads merges.txt as content.strip().split("\n")[1 : 49152 - 256 - 2 + 1], so at
  // most this many merges are used; the first line ("#version: ...") is skipped.
  static constexpr size_t kMaxMerges = 49152 - 256 - 2;

  BpeMerges() = default;
  // Reads merges.txt; throws qdit::Error naming the file (and line) on a missing "#version" header
  // or a line that is not two symbols.
  static BpeMerges load(const std::string& path);
  // Merges in rank order (for tests and tools).
  static BpeMerges from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs);

  // Rank of the pair, or -1 when it is not a merge.
  int64_t rank(std::string_view a, std::string_view b) const;
  size_t size() const { return size_; }

  // Runs the merge loop on `symbols` (already with "</w>" on the last one) and returns the result.
  std::vector<std::string> apply(std::vector<std::string> symbols) const;

 private:
  static std::string key(std::string_view a, std::string_view b);
  std::unordered_map<std::string, int64_t> ranks_;  // "a\x01b" -> rank
  size_t size_ = 0;
};

// The reference loop, transcribed from CLIPTokenizer.bpe (quadratic; used by tests only).
std::vector<std::string> bpe_reference(const BpeMerges& merges, std::vector<std::string> symbols);

}  // namespace qdit::tokenizers
