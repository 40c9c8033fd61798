#include "qdit/tokenizers/bpe.h"

#include <algorithm>
#include <fstream>
#include <queue>
#include <set>
#include <sstream>

#include "qdit/core/error.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::tokenizers {

const std::array<std::string, 256>& bytes_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      std::string s;
      utf8_append(s, printable[b] ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++));
      t[b] = s;
    }
    return t;
  }();
  return table;
}

std::string BpeMerges::key(std::string_view a, std::string_view b) {
  std::string k;
  k.reserve(a.size() + b.size() + 1);
  k.append(a).push_back(' ');  // symbols never contain a space: lines are split on whitespace
  k.append(b);
  return k;
}

int64_t BpeMerges::rank(std::string_view a, std::string_view b) const {
  auto it = ranks_.find(key(a, b));
  return it == ranks_.end() ? -1 : it->second;
}

BpeMerges BpeMerges::from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs) {
  BpeMerges m;
  for (size_t i = 0; i < pairs.size() && i < kMaxMerges; ++i)
    m.ranks_[key(pairs[i].first, pairs[i].second)] = static_cast<int64_t>(i);  // later duplicate wins
  m.size_ = std::min(pairs.size(), kMaxMerges);
  return m;
}

BpeMerges BpeMerges::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("[", path, "] cannot open merges file");
  std::stringstream ss;
  ss << f.rdbuf();
  // Text-mode open() in Python turns "\r\n" and "\r" into "\n" before the split.
  std::u32string raw = utf8_decode(ss.str(), path), text;
  text.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == U'\r') {
      text.push_back(U'\n');
      if (i + 1 < raw.size() && raw[i + 1] == U'\n') ++i;
    } else {
      text.push_back(raw[i]);
    }
  }
  const std::u32string content = python_strip(text);
  std::vector<std::u32string> lines;
  size_t start = 0;
  while (true) {
    const size_t nl = content.find(U'\n', start);
    lines.emplace_back(content.substr(start, nl == std::u32string::npos ? std::u32string::npos : nl - start));
    if (nl == std::u32string::npos) break;
    start = nl + 1;
  }
  if (lines.empty() || lines[0].rfind(U"#version", 0) != 0)
    fail("[", path, "] expected the first line to be the \"#version: ...\" header, found \"",
         utf8_encode(lines.empty() ? U"" : lines[0].substr(0, 60)), "\"");
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t i = 1; i < lines.size() && pairs.size() < kMaxMerges; ++i) {
    const auto parts = python_split(lines[i]);
    if (parts.size() != 2)
      fail("[", path, "] line ", i + 1, ": expected two symbols separated by a space, found \"",
           utf8_encode(lines[i].substr(0, 60)), "\"");
    pairs.emplace_back(utf8_encode(parts[0]), utf8_encode(parts[1]));
  }
  return from_pairs(pairs);
}

std::vector<std::string> BpeMerges::apply(std::vector<std::string> symbols) const {
  const int n = static_cast<int>(symbols.size());
  if (n < 2) return symbols;
  std::vector<int> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;

  using Entry = std::pair<int64_t, int>;  // (rank, left node)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
  auto push = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int64_t r = rank(symbols[left], symbols[next[left]]);
    if (r >= 0) heap.emplace(r, left);
  };
  auto valid = [&](const Entry& e) {
    const int l = e.second;
    return alive[l] && next[l] >= 0 && rank(symbols[l], symbols[next[l]]) == e.first;
  };
  for (int i = 0; i + 1 < n; ++i) push(i);

  int count = n;
  std::vector<int> positions;
  while (count > 1) {
    while (!heap.empty() && !valid(heap.top())) heap.pop();
    if (heap.empty()) break;
    // One pass of the reference loop: the lowest-ranked pair, every occurrence, left to right.
    // Node indices follow the sequence order because a merge keeps the left node.
    const int64_t r = heap.top().first;
    const std::string a = symbols[heap.top().second];  // the pair every valid occurrence shares
    const std::string b = symbols[next[heap.top().second]];
    positions.clear();
    while (!heap.empty() && heap.top().first == r) {
      positions.push_back(heap.top().second);
      heap.pop();
    }
    std::sort(positions.begin(), positions.end());
    positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
    for (int l : positions) {
      if (!alive[l] || next[l] < 0) continue;
      const int rgt = next[l];
      if (symbols[l] != a || symbols[rgt] != b) continue;  // consumed by an earlier overlap
      symbols[l] += symbols[rgt];
      alive[rgt] = 0;
      next[l] = next[rgt];
      if (next[l] >= 0) prev[next[l]] = l;
      --count;
      push(prev[l]);
      push(l);
    }
  }
  std::vector<std::string> out;
  out.reserve(count);
  for (int i = 0; i >= 0; i = next[i]) out.push_back(std::move(symbols[i]));
  return out;
}

std::vector<std::string> bpe_reference(const BpeMerges& merges, std::vector<std::string> word) {
  while (word.size() > 1) {
    int64_t best = -1;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const int64_t r = merges.rank(word[i], word[i + 1]);
      if (r >= 0 && (best < 0 || r < best)) best = r, bi = i;
    }
    if (best < 0) break;
    const std::string first = word[bi], second = word[bi + 1];
    std::vector<std::string> out;
    size_t i = 0;
    while (i < word.size()) {
      auto it = std::find(word.begin() + static_cast<std::ptrdiff_t>(i), word.end(), first);
      if (it == word.end()) {
        out.insert(out.end(), word.begin() + static_cast<std::ptrdiff_t>(i), word.end());
        break;
      }
      const size_t j = static_cast<size_t>(it - word.begin());
      out.insert(out.end(), word.begin() + static_cast<std::ptrdiff_t>(i), it);
      i = j;
      if (word[i] == first && i + 1 < word.size() && word[i + 1] == second) {
        out.push_back(first + second);
        i += 2;
      } else {
        out.push_back(word[i]);
        i += 1;
      }
    }
    word = std::move(out);
  }
  return word;
}

}  // namespace qdit::tokenizers
