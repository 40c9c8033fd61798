#include "qdit/tokenizers/tokenizer.h"

#include <cstring>
#include <filesystem>

#include "qdit/core/error.h"
#include "qdit/tokenizers/clip_tokenizer.h"
#include "qdit/tokenizers/t5_tokenizer.h"
#include "qdit/tokenizers/tokenizer_files.h"

namespace qdit::tokenizers {

namespace {

Tensor to_tensor(const std::vector<std::vector<int64_t>>& rows, const char* what) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t len = n > 0 ? static_cast<int64_t>(rows[0].size()) : 0;
  for (int64_t i = 0; i < n; ++i) {
    QDIT_CHECK(static_cast<int64_t>(rows[i].size()) == len, "[TokenizedBatch] ", what,
               ": expected rows of equal length (pad_to_max with truncation), row 0 has ", len,
               " ids, row ", i, " has ", rows[i].size());
  }
  Tensor t = Tensor::empty({n, len}, DType::I64, MemTag::Other);
  auto* dst = t.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    if (len > 0) std::memcpy(dst + i * len, rows[i].data(), static_cast<size_t>(len) * sizeof(int64_t));
  return t;
}

}  // namespace

Tensor TokenizedBatch::ids_tensor() const { return to_tensor(ids, "ids"); }
Tensor TokenizedBatch::mask_tensor() const { return to_tensor(mask, "mask"); }

std::vector<int64_t> Tokenizer::encode_one(const std::string& text, int max_length, bool truncate) const {
  std::vector<int64_t> ids = encode_plain(text);
  if (truncate) {
    const int64_t limit = max_length > 0 ? max_length : model_max_length_;
    QDIT_CHECK(limit > 0, "[", name(), "] truncation needs max_length > 0 (the folder sets no model_max_length)");
    // transformers only truncates when more than the specials fit; smaller limits are an error there.
    QDIT_CHECK(limit > num_special_tokens(), "[", name(), "] max_length ", limit,
               " leaves no room next to the ", num_special_tokens(), " special token(s)");
    const size_t keep = static_cast<size_t>(limit - num_special_tokens());
    if (ids.size() > keep) ids.resize(keep);
  }
  return add_special_tokens(std::move(ids));
}

TokenizedBatch Tokenizer::encode(const std::vector<std::string>& texts, int max_length, bool pad_to_max,
                                 bool truncate) const {
  const int64_t limit = max_length > 0 ? max_length : model_max_length_;
  if (pad_to_max) {
    QDIT_CHECK(limit > 0, "[", name(), "] padding to max_length needs max_length > 0 (the folder sets no "
               "model_max_length)");
    QDIT_CHECK(pad_id() >= 0, "[", name(), "] padding needs a pad_token; the tokenizer folder has none");
  }
  TokenizedBatch out;
  out.ids.reserve(texts.size());
  out.mask.reserve(texts.size());
  for (const auto& text : texts) {
    std::vector<int64_t> ids = encode_one(text, static_cast<int>(limit), truncate);
    std::vector<int64_t> mask(ids.size(), 1);
    if (pad_to_max && static_cast<int64_t>(ids.size()) < limit) {
      ids.resize(static_cast<size_t>(limit), pad_id());
      mask.resize(static_cast<size_t>(limit), 0);
    }
    out.ids.push_back(std::move(ids));
    out.mask.push_back(std::move(mask));
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  const TokenizerFiles files = TokenizerFiles::load(dir);
  std::string cls = files.tokenizer_class();
  if (cls.empty()) {
    if (files.has_file("spiece.model")) {
      cls = "T5Tokenizer";
    } else if (files.has_file("vocab.json") && files.has_file("merges.txt")) {
      cls = "CLIPTokenizer";
    } else {
      fail("[", dir, "] cannot tell the tokenizer type: no tokenizer_class in tokenizer_config.json and "
           "neither spiece.model nor vocab.json + merges.txt present");
    }
  }
  if (cls == "T5Tokenizer" || cls == "T5TokenizerFast") return T5Tokenizer::load(dir);
  if (cls == "CLIPTokenizer" || cls == "CLIPTokenizerFast") return ClipTokenizer::load(dir);
  fail("[", files.path("tokenizer_config.json"), "] tokenizer_class: expected T5Tokenizer[Fast] or "
       "CLIPTokenizer[Fast], found \"", cls, "\"");
}

}  // namespace qdit::tokenizers
