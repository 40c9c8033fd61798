// Unicode helpers with Python's semantics, for the tokenizers: strict UTF-8 decoding, str.lower()
// (full mapping incl. final sigma), str.strip()/split() whitespace, general categories and NFC
// (data from utf8proc). Used by the CLIP BasicTokenizer path and the PixArt prompt preprocessing.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace qdit::tokenizers {

// Strict UTF-8 -> code points (rejects overlong forms, surrogates, > U+10FFFF, truncation) the way
// Python's decoder does. `where` prefixes the error message ("[where] ... at byte N").
std::u32string utf8_decode(std::string_view s, std::string_view where);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t cp);

// Python str.isspace() for one code point: bidi class WS/B/S or category Zs.
bool is_python_space(char32_t c);
// Python str.lower(): full lowercase mapping (U+0130 -> "i" U+0307) and the Final_Sigma rule.
std::u32string python_lower(std::u32string_view s);
// Python str.strip() / str.split() with no arguments.
std::u32string python_strip(std::u32string_view s);
std::u32string python_lstrip(std::u32string_view s);
std::u32string python_rstrip(std::u32string_view s);
std::vector<std::u32string> python_split(std::u32string_view s);

// General category classes (unicodedata.category(c)[0] == 'L' / 'N' / 'C', == "Zs").
bool is_letter(char32_t c);
bool is_number(char32_t c);
bool is_other(char32_t c);  // Cc, Cf, Cs, Co, Cn (unassigned)
bool is_space_separator(char32_t c);

// unicodedata.normalize("NFC", s).
std::u32string nfc(std::u32string_view s);

// PixArt's `_text_preprocessing` with clean_caption=False: `text.lower().strip()` (UTF-8 in/out).
std::string pixart_preprocess(std::string_view text);

}  // namespace qdit::tokenizers
