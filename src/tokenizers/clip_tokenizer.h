// ClipTokenizer: transformers' slow CLIPTokenizer without ftfy (the BasicTokenizer cleanup path),
// from vocab.json + merges.txt. Used for the CLIP-L / CLIP-G text encoders of SD3 and Flux.
// Added tokens (incl. a pad token such as SD3's CLIP-G "!") are split out before BPE.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "qdit/tokenizers/bpe.h"
#include "qdit/tokenizers/tokenizer.h"
#include "qdit/tokenizers/tokenizer_files.h"

namespace qdit::tokenizers {

class ClipTokenizer : public Tokenizer {
 public:
  // Reads vocab.json, merges.txt and the optional JSON config files of `dir`.
  static std::unique_ptr<ClipTokenizer> load(const std::string& dir);

  // transformers' tokenize(): BPE token strings ("a</w>", "<|endoftext|>", ...).
  std::vector<std::string> tokenize(const std::string& text) const;
  // The BasicTokenizer fallback text: ' '.join(BasicTokenizer(...).tokenize(text)).lower().
  static std::u32string basic_clean(std::u32string_view text);
  // The CLIP pre-tokenisation regex (IGNORECASE) applied to cleaned text: the matched words.
  static std::vector<std::u32string> pretokenize(std::u32string_view text);

  std::vector<int64_t> encode_plain(const std::string& text) const override;
  std::vector<int64_t> add_special_tokens(std::vector<int64_t> ids) const override;
  int num_special_tokens() const override { return 2; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::string name() const override { return "CLIPTokenizer"; }

  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  // Id of a token string: added tokens first, then vocab.json, else the unk id.
  int64_t token_to_id(const std::string& token) const;

 private:
  ClipTokenizer() = default;
  // BPE tokens of one chunk of text that holds no added token.
  void tokenize_chunk(std::u32string_view chunk, std::vector<std::string>& out) const;

  std::unordered_map<std::string, int64_t> encoder_;
  BpeMerges merges_;
  AddedTokenSplitter added_;
  int64_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  int64_t vocab_size_ = 0;
};

}  // namespace qdit::tokenizers
