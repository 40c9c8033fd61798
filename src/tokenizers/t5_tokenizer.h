// T5Tokenizer: transformers' slow T5Tokenizer (legacy=True) on libsentencepiece, for the T5 /
// UMT5 text encoders of PixArt, SD3, Flux and AuraFlow. Added tokens (</s>, <pad>, <unk>,
// <extra_id_N>) are split out first and every other chunk is encoded by sentencepiece separately.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "qdit/tokenizers/tokenizer.h"
#include "qdit/tokenizers/tokenizer_files.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace qdit::tokenizers {

class T5Tokenizer : public Tokenizer {
 public:
  // Reads spiece.model and the optional JSON config files of `dir`.
  static std::unique_ptr<T5Tokenizer> load(const std::string& dir);
  ~T5Tokenizer() override;

  // transformers' tokenize(): sentencepiece pieces and added-token strings.
  std::vector<std::string> tokenize(const std::string& text) const;

  std::vector<int64_t> encode_plain(const std::string& text) const override;
  // Appends </s> unless the sequence already ends with it.
  std::vector<int64_t> add_special_tokens(std::vector<int64_t> ids) const override;
  int num_special_tokens() const override { return 1; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::string name() const override { return "T5Tokenizer"; }

  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t sp_piece_count() const;
  // Id of a token string: added tokens first, then sentencepiece (unknown -> <unk>).
  int64_t token_to_id(const std::string& token) const;

 private:
  T5Tokenizer();

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  AddedTokenSplitter added_;
  int64_t eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  int64_t vocab_size_ = 0;
};

}  // namespace qdit::tokenizers
