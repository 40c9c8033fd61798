#include "qdit/tokenizers/clip_tokenizer.h"

#include <optional>

#include "qdit/core/error.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::tokenizers {

namespace {

// BasicTokenizer._is_chinese_char: the CJK ideograph blocks (not kana or Hangul).
bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// \p{L} under the regex module's IGNORECASE also matches a character whose case variant is a letter;
// U+0345 (a nonspacing mark that uppercases to Greek iota) is the one such non-letter.
bool regex_letter(char32_t c) { return is_letter(c) || c == 0x0345; }

// Case-insensitive match of an ASCII literal (simple case folding: only U+017F folds onto 's').
bool match_literal(std::u32string_view text, size_t i, std::u32string_view lit) {
  if (text.size() - i < lit.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    char32_t c = text[i + k];
    if (c >= 'A' && c <= 'Z') c += 32;
    if (c == 0x017F) c = 's';
    if (c == 0x212A) c = 'k';
    if (c != lit[k]) return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<ClipTokenizer> ClipTokenizer::load(const std::string& dir) {
  const TokenizerFiles files = TokenizerFiles::load(dir);
  std::unique_ptr<ClipTokenizer> t(new ClipTokenizer());

  const std::string vocab_path = files.path("vocab.json");
  if (!files.has_file("vocab.json")) fail("[", vocab_path, "] CLIP vocab file not found");
  const nlohmann::json vocab = read_json_file(vocab_path);
  if (!vocab.is_object() || vocab.empty())
    fail("[", vocab_path, "] expected a non-empty JSON object token -> id, found ", vocab.type_name());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      fail("[", vocab_path, "] \"", token, "\": expected a non-negative integer id, found ", id.dump());
    t->encoder_[token] = id.get<int64_t>();
  }
  if (!files.has_file("merges.txt")) fail("[", files.path("merges.txt"), "] CLIP merges file not found");
  t->merges_ = BpeMerges::load(files.path("merges.txt"));

  // Added tokens as PreTrainedTokenizer builds them (CLIPTokenizer generates none itself).
  auto vocab_id = [&](const std::string& s) -> std::optional<int64_t> {
    auto it = t->encoder_.find(s);
    return it == t->encoder_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  t->added_ = AddedTokenSplitter(build_added_tokens(
      files, {},
      {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"},
       {"pad_token", "<|endoftext|>"}},
      {}, vocab_id, static_cast<int64_t>(t->encoder_.size()), &t->vocab_size_));

  auto special_id = [&](const std::string& key, const char* def) -> int64_t {
    auto s = files.special_token(key, std::string(def));
    return s ? t->token_to_id(s->content) : -1;
  };
  t->unk_id_ = special_id("unk_token", "<|endoftext|>");
  t->bos_id_ = special_id("bos_token", "<|startoftext|>");
  t->eos_id_ = special_id("eos_token", "<|endoftext|>");
  t->pad_id_ = special_id("pad_token", "<|endoftext|>");
  if (t->bos_id_ < 0 || t->eos_id_ < 0)
    fail("[", dir, "] CLIPTokenizer needs bos_token and eos_token ids, found bos ", t->bos_id_, " eos ",
         t->eos_id_);
  t->model_max_length_ = files.model_max_length();
  return t;
}

int64_t ClipTokenizer::token_to_id(const std::string& token) const {
  if (const AddedToken* a = added_.find(token)) return a->id;
  auto it = encoder_.find(token);
  return it != encoder_.end() ? it->second : unk_id_;
}

std::u32string ClipTokenizer::basic_clean(std::u32string_view text) {
  // _clean_text: drop NUL, U+FFFD and control/format chars; whitespace (incl. Zs) -> ' '.
  // _tokenize_chinese_chars: spaces around CJK ideographs.
  std::u32string t;
  t.reserve(text.size());
  for (char32_t c : text) {
    const bool ws_ctl = c == U'\t' || c == U'\n' || c == U'\r';
    if (c == 0 || c == 0xFFFD || (!ws_ctl && is_other(c))) continue;
    if (ws_ctl || c == U' ' || is_space_separator(c)) {
      t.push_back(U' ');
    } else if (is_cjk_ideograph(c)) {
      t.push_back(U' ');
      t.push_back(c);
      t.push_back(U' ');
    } else {
      t.push_back(c);
    }
  }
  // NFC, whitespace split, lowercase (strip_accents=False), no punctuation split; then the
  // caller's ' '.join(...).lower().
  std::u32string joined;
  for (const auto& word : python_split(nfc(t))) {
    if (!joined.empty()) joined.push_back(U' ');
    joined += python_lower(word);
  }
  std::u32string out;
  for (const auto& word : python_split(joined)) {
    if (!out.empty()) out.push_back(U' ');
    out += word;
  }
  return python_lower(out);
}

std::vector<std::u32string> ClipTokenizer::pretokenize(std::u32string_view t) {
  // <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
  static constexpr std::u32string_view kLiterals[] = {U"<|startoftext|>", U"<|endoftext|>", U"'s",
                                                       U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  std::vector<std::u32string> words;
  size_t i = 0;
  while (i < t.size()) {
    const char32_t c = t[i];
    size_t len = 0;
    for (auto lit : kLiterals) {
      if (match_literal(t, i, lit)) {
        len = lit.size();
        break;
      }
    }
    if (len == 0) {
      if (regex_letter(c)) {
        while (i + len < t.size() && regex_letter(t[i + len])) ++len;
      } else if (is_number(c)) {
        len = 1;
      } else if (!is_python_space(c)) {
        while (i + len < t.size() && !is_python_space(t[i + len]) && !regex_letter(t[i + len]) &&
               !is_number(t[i + len]))
          ++len;
      }
    }
    if (len == 0) {
      ++i;  // whitespace: no alternative matches, findall moves on
      continue;
    }
    words.emplace_back(t.substr(i, len));
    i += len;
  }
  return words;
}

void ClipTokenizer::tokenize_chunk(std::u32string_view chunk, std::vector<std::string>& out) const {
  const auto& b2u = bytes_to_unicode();
  for (const auto& word : pretokenize(basic_clean(chunk))) {
    const std::string bytes = utf8_encode(word);
    std::vector<std::string> symbols;
    symbols.reserve(bytes.size());
    std::string joined;
    for (unsigned char b : bytes) {
      symbols.push_back(b2u[b]);
      joined += b2u[b];
    }
    // CLIPTokenizer.bpe's cache is seeded with these two, which therefore skip BPE and "</w>".
    if (joined == "<|startoftext|>" || joined == "<|endoftext|>") {
      out.push_back(joined);
      continue;
    }
    symbols.back() += "</w>";
    for (auto& s : merges_.apply(std::move(symbols))) out.push_back(std::move(s));
  }
}

std::vector<std::string> ClipTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& chunk : added_.split(utf8_decode(text, "CLIPTokenizer"))) {
    if (chunk.token) {
      out.push_back(chunk.token->content);
    } else {
      tokenize_chunk(chunk.text, out);
    }
  }
  return out;
}

std::vector<int64_t> ClipTokenizer::encode_plain(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const auto& tok : tokenize(text)) ids.push_back(token_to_id(tok));
  return ids;
}

std::vector<int64_t> ClipTokenizer::add_special_tokens(std::vector<int64_t> ids) const {
  ids.insert(ids.begin(), bos_id_);
  ids.push_back(eos_id_);
  return ids;
}

}  // namespace qdit::tokenizers
