// Reading a Hugging Face tokenizer folder's JSON files (tokenizer_config.json,
// special_tokens_map.json, added_tokens.json) and the added-token splitting that the slow
// tokenizers do before their model runs. Shared by T5Tokenizer and ClipTokenizer.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace qdit::tokenizers {

// transformers' AddedToken: matched literally in the raw text, before any normalisation.
struct AddedToken {
  std::string content;  // UTF-8
  int64_t id = -1;
  bool lstrip = false;       // eats whitespace on its left
  bool rstrip = false;       // eats whitespace on its right
  bool single_word = false;  // only matches as a whole word
  bool special = false;
};

// Reads a JSON file; throws qdit::Error naming the file when it is missing or malformed.
nlohmann::json read_json_file(const std::string& path);

class TokenizerFiles {
 public:
  // Reads the optional JSON files of `dir` (a missing file is an empty object).
  static TokenizerFiles load(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const;  // dir/name
  bool has_file(const std::string& name) const;
  const nlohmann::json& config() const { return config_; }

  // "tokenizer_class" from tokenizer_config.json, "" when absent.
  std::string tokenizer_class() const;
  // A special token ("pad_token", "eos_token", ...), a string or an AddedToken dict; `fallback`
  // (the class default) when absent, nullopt when null. Like from_pretrained, special_tokens_map.json
  // is only consulted (and wins) when tokenizer_config.json has no added_tokens_decoder.
  std::optional<AddedToken> special_token(const std::string& key,
                                          std::optional<std::string> fallback) const;
  // "additional_special_tokens", with the same precedence; nullopt when absent or null.
  std::optional<std::vector<AddedToken>> additional_special_tokens() const;
  // tokenizer_config.json "added_tokens_decoder" (id -> AddedToken dict), empty when absent.
  std::vector<AddedToken> added_tokens_decoder() const;
  // added_tokens.json (content -> id), empty when absent.
  std::vector<std::pair<std::string, int64_t>> added_tokens_json() const;
  // model_max_length; -1 when absent or the "very large integer" placeholder (no limit).
  int64_t model_max_length() const;
  // A boolean config key, `fallback` when absent or null.
  bool config_bool(const std::string& key, bool fallback) const;

 private:
  std::string dir_;
  nlohmann::json config_ = nlohmann::json::object();
  nlohmann::json special_map_ = nlohmann::json::object();
  nlohmann::json added_json_ = nlohmann::json::object();
};

// PreTrainedTokenizer's added-token table: `initial` (what the class generates, e.g. T5's
// <extra_id_N>), updated by tokenizer_config.json's added_tokens_decoder (or, without one, the legacy
// added_tokens.json), then each special token of `special_keys` (key, class default),
// additional_special_tokens and `more_specials` not present yet, with its vocab id or else the next
// free id. `vocab_id` looks a string up in the model vocab; `*len_tokenizer` receives len(tokenizer).
std::vector<AddedToken> build_added_tokens(
    const TokenizerFiles& files, std::vector<AddedToken> initial,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& special_keys,
    const std::vector<AddedToken>& more_specials,
    const std::function<std::optional<int64_t>(const std::string&)>& vocab_id, int64_t vocab_count,
    int64_t* len_tokenizer);

// Splits text on added tokens like transformers' Trie.split + the lstrip/rstrip/single_word
// handling of PreTrainedTokenizer.tokenize: leftmost match, longest at that position.
class AddedTokenSplitter {
 public:
  struct Chunk {
    std::u32string text;
    const AddedToken* token = nullptr;  // set when the chunk is an added token
  };

  AddedTokenSplitter() = default;
  explicit AddedTokenSplitter(std::vector<AddedToken> tokens);

  // Chunks in order; empty text chunks (e.g. fully stripped) are dropped.
  std::vector<Chunk> split(std::u32string_view text) const;
  const AddedToken* find(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::u32string> contents_;
  std::unordered_map<char32_t, std::vector<size_t>> by_first_;  // longest first
  std::unordered_map<std::string, size_t> by_content_;
};

}  // namespace qdit::tokenizers
