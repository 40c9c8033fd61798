#include "qdit/tokenizers/unicode_text.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "qdit/core/error.h"

namespace qdit::tokenizers {

std::u32string utf8_decode(std::string_view s, std::string_view where) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  auto bad = [&](size_t at) {
    fail("[", where, "] text is not valid UTF-8: bad sequence at byte ", at, " of ", n);
  };
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int len;
    char32_t cp;
    char32_t min_cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min_cp = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F, min_cp = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min_cp = 0x10000;
    } else {
      bad(i);
    }
    if (i + len > n) bad(i);
    for (int k = 1; k < len; ++k) {
      const unsigned cc = p[i + k];
      if ((cc & 0xC0) != 0x80) bad(i);
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad(i);
    out.push_back(cp);
    i += len;
  }
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

bool is_python_space(char32_t c) {
  // CPython's _PyUnicode_IsWhitespace table (bidi WS/B/S or Zs); stable across Unicode versions.
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {

// Code points that utf8proc 2.8 (Unicode 15.0) assigns but Python 3.11's unicodedata (Unicode
// 14.0, the version that produced the reference ids) reports as unassigned "Cn". Treating them as
// Cn matters: CLIP's _clean_text drops category-C characters (e.g. the Unicode 15 emoji).
bool is_new_in_unicode15(char32_t c) {
  static constexpr char32_t kRanges[][2] = {
      {0xCF3, 0xCF3}, {0xECE, 0xECE}, {0x10EFD, 0x10EFF}, {0x1123F, 0x11241},
      {0x11B00, 0x11B09}, {0x11F00, 0x11F10}, {0x11F12, 0x11F3A}, {0x11F3E, 0x11F59},
      {0x1342F, 0x1342F}, {0x13439, 0x1343F}, {0x13440, 0x13455}, {0x1B132, 0x1B132},
      {0x1B155, 0x1B155}, {0x1D2C0, 0x1D2D3}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D},
      {0x1E08F, 0x1E08F}, {0x1E4D0, 0x1E4F9}, {0x1F6DC, 0x1F6DC}, {0x1F774, 0x1F776},
      {0x1F77B, 0x1F77F}, {0x1F7D9, 0x1F7D9}, {0x1FA75, 0x1FA77}, {0x1FA87, 0x1FA88},
      {0x1FAAD, 0x1FAAF}, {0x1FABB, 0x1FABD}, {0x1FABF, 0x1FABF}, {0x1FACE, 0x1FACF},
      {0x1FADA, 0x1FADB}, {0x1FAE8, 0x1FAE8}, {0x1FAF7, 0x1FAF8}, {0x2B739, 0x2B739},
      {0x31350, 0x323AF}};
  if (c < 0xCF3) return false;
  for (const auto& r : kRanges)
    if (c >= r[0] && c <= r[1]) return true;
  return false;
}

utf8proc_category_t category(char32_t c) {
  if (is_new_in_unicode15(c)) return UTF8PROC_CATEGORY_CN;
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

// Other_Lowercase / Other_Uppercase ranges: characters that are Cased without being Lu/Ll/Lt.
bool is_other_cased(char32_t c) {
  static constexpr char32_t kRanges[][2] = {
      {0x00AA, 0x00AA}, {0x00BA, 0x00BA}, {0x02B0, 0x02B8}, {0x02C0, 0x02C1}, {0x02E0, 0x02E4},
      {0x0345, 0x0345}, {0x037A, 0x037A}, {0x10FC, 0x10FC}, {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78},
      {0x1D9B, 0x1DBF}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2160, 0x217F},
      {0x24B6, 0x24E9}, {0x2C7C, 0x2C7D}, {0xA69C, 0xA69D}, {0xA770, 0xA770}, {0xA7F2, 0xA7F4},
      {0xA7F8, 0xA7F9}, {0xAB5C, 0xAB5F}, {0xAB69, 0xAB69}, {0x10780, 0x10780},
      {0x10783, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA},
      {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189}};
  for (const auto& r : kRanges)
    if (c >= r[0] && c <= r[1]) return true;
  return false;
}

// Unicode "Cased" (DerivedCoreProperties).
bool is_cased(char32_t c) {
  const auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
         cat == UTF8PROC_CATEGORY_LT || is_other_cased(c);
}

// Unicode "Case_Ignorable": Mn Me Cf Lm Sk, or Word_Break MidLetter / MidNumLet / Single_Quote.
bool is_case_ignorable(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  switch (c) {
    case 0x0027: case 0x002E: case 0x003A: case 0x00B7: case 0x0387: case 0x055F: case 0x05F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55:
    case 0xFF07: case 0xFF0E: case 0xFF1A:
      return true;
    default:
      return false;
  }
}

// CPython's handle_capital_sigma: Σ at index i becomes ς when preceded by a cased letter (skipping
// case-ignorables) and not followed by one.
bool is_final_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  char32_t c = 0;
  bool found = false;
  while (j > 0) {
    c = s[--j];
    if (!is_case_ignorable(c)) {
      found = true;
      break;
    }
  }
  if (!found || !is_cased(c)) return false;
  for (size_t k = i + 1; k < s.size(); ++k) {
    if (!is_case_ignorable(s[k])) return !is_cased(s[k]);
  }
  return true;
}

}  // namespace

std::u32string python_lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x03A3) {
      out.push_back(is_final_sigma(s, i) ? 0x03C2 : 0x03C3);
    } else if (c == 0x0130) {
      // The one unconditional multi-character lowercase mapping in SpecialCasing.txt.
      out.push_back(0x0069);
      out.push_back(0x0307);
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

std::u32string python_lstrip(std::u32string_view s) {
  size_t b = 0;
  while (b < s.size() && is_python_space(s[b])) ++b;
  return std::u32string(s.substr(b));
}

std::u32string python_rstrip(std::u32string_view s) {
  size_t e = s.size();
  while (e > 0 && is_python_space(s[e - 1])) --e;
  return std::u32string(s.substr(0, e));
}

std::u32string python_strip(std::u32string_view s) { return python_lstrip(python_rstrip(s)); }

std::vector<std::u32string> python_split(std::u32string_view s) {
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_python_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_python_space(s[j])) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool is_letter(char32_t c) {
  const auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

bool is_number(char32_t c) {
  const auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
}

bool is_other(char32_t c) {
  const auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_CN || (cat >= UTF8PROC_CATEGORY_CC && cat <= UTF8PROC_CATEGORY_CO);
}

bool is_space_separator(char32_t c) { return category(c) == UTF8PROC_CATEGORY_ZS; }

std::u32string nfc(std::u32string_view s) {
  bool ascii = true;
  for (char32_t c : s) ascii = ascii && c < 0x80;
  if (ascii) return std::u32string(s);  // ASCII is always in NFC
  const std::string in = utf8_encode(s);
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()),
                   static_cast<utf8proc_ssize_t>(in.size()), &dst,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(dst, &std::free);
  if (n < 0) fail("[nfc] utf8proc failed: ", utf8proc_errmsg(n));
  return utf8_decode(std::string_view(reinterpret_cast<const char*>(dst), static_cast<size_t>(n)),
                     "nfc");
}

std::string pixart_preprocess(std::string_view text) {
  return utf8_encode(python_strip(python_lower(utf8_decode(text, "pixart_preprocess"))));
}

}  // namespace qdit::tokenizers
