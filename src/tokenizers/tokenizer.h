// Common tokenizer interface for the text pipelines (PixArt, SD3, Flux, AuraFlow): text -> padded
// ids + attention mask, with transformers' slow-tokenizer semantics for `tok(texts,
// padding="max_length", max_length=L, truncation=True, add_special_tokens=True)`.
// load_tokenizer() picks T5Tokenizer or ClipTokenizer from a save_pretrained folder.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::tokenizers {

struct TokenizedBatch {
  std::vector<std::vector<int64_t>> ids;   // one row per text
  std::vector<std::vector<int64_t>> mask;  // 1 on tokens (specials included), 0 on padding

  // I64 [N, L] copies; every row must have the same length (throws otherwise).
  Tensor ids_tensor() const;
  Tensor mask_tensor() const;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids of one text without special tokens (transformers' tokenize + convert_tokens_to_ids).
  virtual std::vector<int64_t> encode_plain(const std::string& text) const = 0;
  // build_inputs_with_special_tokens: T5 appends </s> (unless already last), CLIP wraps BOS/EOS.
  virtual std::vector<int64_t> add_special_tokens(std::vector<int64_t> ids) const = 0;
  // How many ids add_special_tokens adds to an empty sequence (what truncation reserves).
  virtual int num_special_tokens() const = 0;

  // Tokenizes each text. truncate: keep max_length - num_special_tokens() plain ids, then add the
  // specials. pad_to_max: right-pad with pad_id() to max_length (longer rows stay longer when not
  // truncating). max_length <= 0 means model_max_length(). Neither flag: plain + specials, ragged.
  virtual TokenizedBatch encode(const std::vector<std::string>& texts, int max_length, bool pad_to_max,
                                bool truncate) const;
  std::vector<int64_t> encode_one(const std::string& text, int max_length, bool truncate) const;

  virtual int64_t pad_id() const = 0;
  // len(tokenizer): the number of distinct ids (model vocab plus added tokens).
  virtual int64_t vocab_size() const = 0;
  // "T5Tokenizer" / "CLIPTokenizer".
  virtual std::string name() const = 0;
  // From tokenizer_config.json; -1 when the folder gives no limit.
  int64_t model_max_length() const { return model_max_length_; }

 protected:
  int64_t model_max_length_ = -1;
};

// Reads `dir` (a transformers save_pretrained tokenizer folder). The class comes from
// tokenizer_config.json "tokenizer_class" (T5Tokenizer[Fast], CLIPTokenizer[Fast]) or, without
// one, from the files present: spiece.model -> T5, vocab.json + merges.txt -> CLIP.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

}  // namespace qdit::tokenizers
