#include "qdit/tokenizers/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <optional>

#include "qdit/core/error.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::tokenizers {

T5Tokenizer::T5Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
T5Tokenizer::~T5Tokenizer() = default;

std::unique_ptr<T5Tokenizer> T5Tokenizer::load(const std::string& dir) {
  const TokenizerFiles files = TokenizerFiles::load(dir);
  std::unique_ptr<T5Tokenizer> t(new T5Tokenizer());
  const std::string model_path = files.path("spiece.model");
  if (!files.has_file("spiece.model")) fail("[", model_path, "] T5 sentencepiece model not found");
  if (const auto st = t->sp_->Load(model_path); !st.ok())
    fail("[", model_path, "] cannot load the sentencepiece model: ", st.ToString());

  // legacy=False changes how text after a special token is encoded (no dummy "▁"), which needs a
  // rewritten model proto; only the legacy behaviour (also the default when unset) is implemented.
  if (!files.config_bool("legacy", true))
    fail("[", files.path("tokenizer_config.json"), "] legacy: only legacy=true (or unset) T5Tokenizer "
         "behaviour is supported, found false");

  const int64_t sp_size = t->sp_->GetPieceSize();
  int64_t extra_ids = 100;  // T5Tokenizer's default
  if (auto it = files.config().find("extra_ids"); it != files.config().end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      fail("[", files.path("tokenizer_config.json"), "] extra_ids: expected a non-negative integer, found ",
           it->dump());
    extra_ids = it->get<int64_t>();
  }
  // T5Tokenizer.__init__: without additional_special_tokens, <extra_id_i> = len(sp) - 1 +
  // extra_ids - i (numbered backwards), stripping both sides; with a list that names some
  // "<extra_id_" tokens, that many are numbered so; with a list naming none, the extra ids are
  // appended to it and become ordinary special tokens numbered forwards after the vocab.
  int64_t n_extra = extra_ids;
  std::vector<AddedToken> appended;
  if (const auto listed = files.additional_special_tokens()) {
    int64_t count = 0;
    for (const auto& a : *listed) count += a.content.find("<extra_id_") != std::string::npos ? 1 : 0;
    n_extra = count;
    if (count < 1) {
      for (int64_t i = 0; i < extra_ids; ++i) {
        AddedToken a;
        a.content = "<extra_id_" + std::to_string(i) + ">";
        a.special = true;
        appended.push_back(a);
      }
    }
  }
  std::vector<AddedToken> initial;
  for (int64_t i = 0; i < n_extra; ++i) {
    AddedToken a;
    a.content = "<extra_id_" + std::to_string(i) + ">";
    a.id = sp_size - 1 + extra_ids - i;
    a.lstrip = a.rstrip = true;
    a.special = true;
    initial.push_back(a);
  }
  auto vocab_id = [&](const std::string& s) -> std::optional<int64_t> {
    const int id = t->sp_->PieceToId(s);
    if (id >= 0 && id < sp_size && t->sp_->IdToPiece(id) == s) return id;
    return std::nullopt;
  };
  t->added_ = AddedTokenSplitter(build_added_tokens(
      files, std::move(initial), {{"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"pad_token", "<pad>"}},
      appended, vocab_id, sp_size, &t->vocab_size_));

  auto special_id = [&](const std::string& key, const char* def) -> int64_t {
    auto s = files.special_token(key, std::string(def));
    return s ? t->token_to_id(s->content) : -1;
  };
  t->unk_id_ = special_id("unk_token", "<unk>");
  t->eos_id_ = special_id("eos_token", "</s>");
  t->pad_id_ = special_id("pad_token", "<pad>");
  if (t->eos_id_ < 0) fail("[", dir, "] T5Tokenizer needs an eos_token");
  t->model_max_length_ = files.model_max_length();
  return t;
}

int64_t T5Tokenizer::sp_piece_count() const { return sp_->GetPieceSize(); }

int64_t T5Tokenizer::token_to_id(const std::string& token) const {
  if (const AddedToken* a = added_.find(token)) return a->id;
  return sp_->PieceToId(token);  // unknown strings map to the model's unk id
}

std::vector<std::string> T5Tokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& chunk : added_.split(utf8_decode(text, "T5Tokenizer"))) {
    if (chunk.token) {
      out.push_back(chunk.token->content);
      continue;
    }
    // legacy=True: each chunk gets its own dummy-prefix "▁"; nmt_nfkc normalisation, whitespace
    // handling and the merging of consecutive unknown characters happen inside sentencepiece.
    std::vector<std::string> pieces;
    if (const auto st = sp_->Encode(utf8_encode(chunk.text), &pieces); !st.ok())
      fail("[T5Tokenizer] sentencepiece encode failed: ", st.ToString());
    for (auto& p : pieces) out.push_back(std::move(p));
  }
  return out;
}

std::vector<int64_t> T5Tokenizer::encode_plain(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const auto& tok : tokenize(text)) ids.push_back(token_to_id(tok));
  return ids;
}

std::vector<int64_t> T5Tokenizer::add_special_tokens(std::vector<int64_t> ids) const {
  if (ids.empty() || ids.back() != eos_id_) ids.push_back(eos_id_);
  return ids;
}

}  // namespace qdit::tokenizers
