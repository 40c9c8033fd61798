// Synthetic tokenizer folders for `qdit make-model`: real tokenizer files cannot be downloaded
// here, so the generator writes loadable ones with the right vocabulary sizes.
//  - T5: spiece.model is a sentencepiece unigram ModelProto serialised by hand (the protobuf
//    headers are not shipped): <pad> 0, </s> 1, <unk> 2, "▁", the printable ASCII characters with
//    and without "▁", then lowercase strings; T5Tokenizer adds its 100 <extra_id_N> on top.
//  - CLIP: byte-level BPE: the 256 byte symbols, the same with "</w>", merges building lowercase
//    strings, then <|startoftext|> and <|endoftext|> as the last two ids (as in CLIP's vocab).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qdit/api/make_model.h"

namespace qdit::api {

// The serialised ModelProto of a unigram sentencepiece model with `pieces` pieces (>= 192).
std::string synth_spiece_model(int64_t pieces);

// CLIP vocab (token strings, id = index) and merges ("a b" lines, rank = index) with `vocab_size`
// entries in total (>= 515).
struct ClipBpe {
  std::vector<std::string> vocab;
  std::vector<std::string> merges;
};
ClipBpe synth_clip_bpe(int64_t vocab_size);

// Writes the tokenizer files of `spec` into `dir` (which must exist).
void write_tokenizer_folder(const std::string& dir, const TokenizerSpec& spec);

}  // namespace qdit::api
