#include "qdit/tokenizers/tokenizer_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "qdit/core/error.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::tokenizers {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("[", path, "] cannot open file");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail("[", path, "] expected valid JSON, parse failed: ", e.what());
  }
}

TokenizerFiles TokenizerFiles::load(const std::string& dir) {
  if (!fs::is_directory(dir)) fail("[", dir, "] tokenizer folder does not exist");
  TokenizerFiles t;
  t.dir_ = dir;
  auto read_object = [&](const std::string& name, json& dst) {
    if (!t.has_file(name)) return;
    dst = read_json_file(t.path(name));
    if (!dst.is_object()) fail("[", t.path(name), "] expected a JSON object, found ", dst.type_name());
  };
  read_object("tokenizer_config.json", t.config_);
  read_object("special_tokens_map.json", t.special_map_);
  read_object("added_tokens.json", t.added_json_);
  return t;
}

std::string TokenizerFiles::path(const std::string& name) const {
  return (fs::path(dir_) / name).string();
}

bool TokenizerFiles::has_file(const std::string& name) const {
  return fs::is_regular_file(path(name));
}

std::string TokenizerFiles::tokenizer_class() const {
  auto it = config_.find("tokenizer_class");
  if (it == config_.end() || it->is_null()) return "";
  if (!it->is_string())
    fail("[", path("tokenizer_config.json"), "] tokenizer_class: expected a string, found ", it->type_name());
  return it->get<std::string>();
}

namespace {

// A token written as a string or as a serialized AddedToken dict ({"content": ..., "lstrip": ...}).
AddedToken parse_added_token(const json& v, const std::string& where) {
  AddedToken t;
  t.special = true;
  if (v.is_string()) {
    t.content = v.get<std::string>();
    return t;
  }
  if (!v.is_object() || !v.contains("content") || !v["content"].is_string())
    fail("[", where, "] expected a token string or an object with a \"content\" string, found ", v.dump());
  t.content = v["content"].get<std::string>();
  auto flag = [&](const char* key, bool def) {
    auto it = v.find(key);
    if (it == v.end() || it->is_null()) return def;
    if (!it->is_boolean()) fail("[", where, "] ", key, ": expected a boolean, found ", it->dump());
    return it->get<bool>();
  };
  t.lstrip = flag("lstrip", false);
  t.rstrip = flag("rstrip", false);
  t.single_word = flag("single_word", false);
  t.special = flag("special", true);
  return t;
}

}  // namespace

std::optional<AddedToken> TokenizerFiles::special_token(const std::string& key,
                                                        std::optional<std::string> fallback) const {
  const bool legacy = !config_.contains("added_tokens_decoder");
  for (const auto* src : {&special_map_, &config_}) {
    if (src == &special_map_ && !legacy) continue;
    auto it = src->find(key);
    if (it == src->end()) continue;
    if (it->is_null()) return std::nullopt;  // explicitly disabled
    const std::string file = src == &special_map_ ? "special_tokens_map.json" : "tokenizer_config.json";
    return parse_added_token(*it, path(file) + "] [" + key);
  }
  if (!fallback) return std::nullopt;
  AddedToken t;
  t.content = *fallback;
  t.special = true;
  return t;
}

std::optional<std::vector<AddedToken>> TokenizerFiles::additional_special_tokens() const {
  const bool legacy = !config_.contains("added_tokens_decoder");
  std::optional<std::vector<AddedToken>> out;
  for (const auto* src : {&special_map_, &config_}) {
    if (src == &special_map_ && !legacy) continue;
    auto it = src->find("additional_special_tokens");
    if (it == src->end() || it->is_null()) continue;
    const std::string where =
        path(src == &special_map_ ? "special_tokens_map.json" : "tokenizer_config.json") +
        "] [additional_special_tokens";
    if (!it->is_array()) fail("[", where, "] expected a list, found ", it->type_name());
    out.emplace();
    for (const auto& v : *it) out->push_back(parse_added_token(v, where));
    break;
  }
  return out;
}

std::vector<AddedToken> build_added_tokens(
    const TokenizerFiles& files, std::vector<AddedToken> initial,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& special_keys,
    const std::vector<AddedToken>& more_specials, const std::function<std::optional<int64_t>(const std::string&)>& vocab_id, int64_t vocab_count,
    int64_t* len_tokenizer) {
  std::vector<AddedToken> overrides = files.added_tokens_decoder();
  if (!files.config().contains("added_tokens_decoder")) {
    for (const auto& [content, id] : files.added_tokens_json()) {
      AddedToken a;
      a.content = content;
      a.id = id;
      overrides.push_back(a);
    }
  }
  // dict.update by id.
  std::vector<AddedToken> table = std::move(initial);
  for (auto& o : overrides) {
    bool replaced = false;
    for (auto& t : table) {
      if (t.id == o.id) t = o, replaced = true;
    }
    if (!replaced) table.push_back(o);
  }
  std::set<std::string> extra_strings;  // strings outside the model vocab
  auto note = [&](const std::string& s) {
    if (!vocab_id(s)) extra_strings.insert(s);
  };
  for (const auto& t : table) note(t.content);
  std::vector<AddedToken> specials;
  for (const auto& [key, def] : special_keys)
    if (auto s = files.special_token(key, def)) specials.push_back(*s);
  for (auto& s : files.additional_special_tokens().value_or(std::vector<AddedToken>{})) specials.push_back(s);
  for (const auto& s : more_specials) specials.push_back(s);
  for (auto& s : specials) {
    bool present = false;
    for (const auto& t : table) present = present || t.content == s.content;
    if (present) continue;
    if (auto id = vocab_id(s.content)) {
      s.id = *id;
    } else {
      s.id = vocab_count + static_cast<int64_t>(extra_strings.size());
      extra_strings.insert(s.content);
    }
    table.push_back(s);
  }
  *len_tokenizer = vocab_count + static_cast<int64_t>(extra_strings.size());
  return table;
}

std::vector<AddedToken> TokenizerFiles::added_tokens_decoder() const {
  std::vector<AddedToken> out;
  auto it = config_.find("added_tokens_decoder");
  if (it == config_.end() || it->is_null()) return out;
  const std::string where = path("tokenizer_config.json") + "] [added_tokens_decoder";
  if (!it->is_object()) fail("[", where, "] expected an object, found ", it->type_name());
  for (const auto& [key, value] : it->items()) {
    AddedToken t = parse_added_token(value, where + "." + key);
    char* end = nullptr;
    const long long id = std::strtoll(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || id < 0)
      fail("[", where, "] expected non-negative integer keys, found \"", key, "\"");
    t.id = id;
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::pair<std::string, int64_t>> TokenizerFiles::added_tokens_json() const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& [key, value] : added_json_.items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0)
      fail("[", path("added_tokens.json"), "] \"", key, "\": expected a non-negative integer id, found ",
           value.dump());
    out.emplace_back(key, value.get<int64_t>());
  }
  return out;
}

int64_t TokenizerFiles::model_max_length() const {
  auto it = config_.find("model_max_length");
  if (it == config_.end() || it->is_null()) return -1;
  if (!it->is_number())
    fail("[", path("tokenizer_config.json"), "] model_max_length: expected a number, found ", it->dump());
  // transformers writes VERY_LARGE_INTEGER (int(1e30)) for "no limit"; it parses as a float here.
  if (!it->is_number_integer()) return -1;
  if (it->is_number_unsigned() && it->get<uint64_t>() > (uint64_t(1) << 40)) return -1;
  const int64_t v = it->get<int64_t>();
  if (v <= 0) fail("[", path("tokenizer_config.json"), "] model_max_length: expected > 0, found ", v);
  return v > (int64_t(1) << 40) ? -1 : v;
}

bool TokenizerFiles::config_bool(const std::string& key, bool fallback) const {
  auto it = config_.find(key);
  if (it == config_.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    fail("[", path("tokenizer_config.json"), "] ", key, ": expected a boolean, found ", it->dump());
  return it->get<bool>();
}

// ---------------------------------------------------------------------------------------------

AddedTokenSplitter::AddedTokenSplitter(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    contents_.push_back(utf8_decode(tokens_[i].content, "added token"));
    if (contents_.back().empty()) fail("[added tokens] token id ", tokens_[i].id, " has empty content");
    by_content_[tokens_[i].content] = i;  // a later duplicate wins, like a dict
  }
  for (const auto& [content, i] : by_content_) by_first_[contents_[i][0]].push_back(i);
  for (auto& [c, list] : by_first_) {
    std::sort(list.begin(), list.end(), [&](size_t a, size_t b) {
      return contents_[a].size() != contents_[b].size() ? contents_[a].size() > contents_[b].size()
                                                        : a < b;
    });
  }
}

const AddedToken* AddedTokenSplitter::find(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

std::vector<AddedTokenSplitter::Chunk> AddedTokenSplitter::split(std::u32string_view text) const {
  // 1. Cut at the leftmost, longest matches.
  std::vector<std::u32string> parts;
  std::vector<const AddedToken*> kind;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const AddedToken* hit = nullptr;
    size_t hit_len = 0;
    if (auto it = by_first_.find(text[i]); it != by_first_.end()) {
      for (size_t idx : it->second) {
        const auto& c = contents_[idx];
        if (text.substr(i, c.size()) == c) {
          hit = &tokens_[idx];
          hit_len = c.size();
          break;  // longest first
        }
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > start) parts.emplace_back(text.substr(start, i - start)), kind.push_back(nullptr);
    parts.emplace_back(text.substr(i, hit_len)), kind.push_back(hit);
    i += hit_len;
    start = i;
  }
  if (start < text.size()) parts.emplace_back(text.substr(start)), kind.push_back(nullptr);

  // 2. Whitespace stripping / single-word handling around each added token, in order, exactly
  //    as PreTrainedTokenizer.tokenize mutates its list.
  for (size_t k = 0; k < parts.size(); ++k) {
    const AddedToken* tok = kind[k] ? find(utf8_encode(parts[k])) : nullptr;
    if (!tok) continue;
    const AddedToken& t = *tok;
    const bool has_left = k > 0 && !parts[k - 1].empty();
    const bool has_right = k + 1 < parts.size() && !parts[k + 1].empty();
    if (t.rstrip && has_right) parts[k + 1] = python_lstrip(parts[k + 1]);
    if (t.lstrip && has_left) parts[k - 1] = python_rstrip(parts[k - 1]);
    if (t.single_word && has_left && parts[k - 1].back() != U' ') {
      parts[k - 1] += parts[k];
      parts[k].clear();
    } else if (t.single_word && has_right && parts[k + 1].front() != U' ') {
      parts[k] += parts[k + 1];
      parts[k + 1].clear();
    }
  }

  // 3. A chunk is an added token when its text is one (transformers tests membership by content).
  std::vector<Chunk> out;
  for (auto& p : parts) {
    if (p.empty()) continue;
    Chunk c;
    c.token = find(utf8_encode(p));
    c.text = std::move(p);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace qdit::tokenizers
