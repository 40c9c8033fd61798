#include "qdit/api/make_model_tokenizers.h"

#include <cstring>
#include <deque>
#include <fstream>

#include "qdit/api/make_model_internal.h"
#include "qdit/core/error.h"

namespace qdit::api {

namespace {

using nlohmann::json;

const std::string kSpace = "\xE2\x96\x81";  // "▁", sentencepiece's whitespace mark
constexpr int kExtraIds = 100;              // T5Tokenizer's default extra_ids

// --- protobuf wire format (just what a ModelProto needs) -------------------------------------

void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void put_key(std::string& s, int field, int wire) { put_varint(s, static_cast<uint64_t>(field) << 3 | wire); }
// int32/enum/bool fields; negative values are sign-extended to 10 bytes as protobuf does.
void put_int(std::string& s, int field, int64_t v) {
  put_key(s, field, 0);
  put_varint(s, static_cast<uint64_t>(v));
}
void put_bytes(std::string& s, int field, const std::string& b) {
  put_key(s, field, 2);
  put_varint(s, b.size());
  s += b;
}
void put_float(std::string& s, int field, float f) {
  put_key(s, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);  // little-endian on every target qdit builds for
  s.append(b, 4);
}

// sentencepiece_model.proto: SentencePiece.Type
enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3 };

std::string piece_message(const std::string& piece, float score, PieceType type) {
  std::string m;
  put_bytes(m, 1, piece);
  put_float(m, 2, score);
  if (type != kNormal) put_int(m, 3, type);
  return m;
}

// --- CLIP byte symbols ------------------------------------------------------------------------

std::string utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (c >> 6)));
    s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xE0 | (c >> 12)));
    s.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
  return s;
}

// GPT-2's bytes_to_unicode() in its list order: printable Latin-1 bytes map to themselves, the
// others to 256 + n.
std::vector<std::string> byte_symbols() {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<char32_t> cs(bs.begin(), bs.end());
  std::vector<bool> used(256, false);
  for (int b : bs) used[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (!used[b]) cs.push_back(static_cast<char32_t>(256 + n++));
  std::vector<std::string> out;
  for (char32_t c : cs) out.push_back(utf8(c));
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (!f) fail("[make-model] cannot write ", path);
}

json added_token(const std::string& content, bool normalized) {
  return {{"content", content}, {"lstrip", false}, {"normalized", normalized}, {"rstrip", false},
          {"single_word", false}, {"special", true}};
}

void write_t5_folder(const std::string& dir, const TokenizerSpec& spec) {
  write_text(dir + "/spiece.model", synth_spiece_model(spec.pieces));
  json extras = json::array();
  for (int i = 0; i < kExtraIds; ++i) extras.push_back("<extra_id_" + std::to_string(i) + ">");
  json map = {{"additional_special_tokens", extras}, {"eos_token", "</s>"}, {"pad_token", "<pad>"},
              {"unk_token", "<unk>"}};
  json cfg = map;
  cfg["clean_up_tokenization_spaces"] = true;
  cfg["extra_ids"] = kExtraIds;
  cfg["legacy"] = true;
  cfg["model_max_length"] = spec.model_max_length;
  cfg["sp_model_kwargs"] = json::object();
  cfg["tokenizer_class"] = spec.tokenizer_class;
  make_model_detail::write_json_file(dir + "/special_tokens_map.json", map);
  make_model_detail::write_json_file(dir + "/tokenizer_config.json", cfg);
}

void write_clip_folder(const std::string& dir, const TokenizerSpec& spec) {
  const ClipBpe bpe = synth_clip_bpe(spec.pieces);
  // By id, as CLIP's file lists it (built as text: ordered_json insertion is linear per key).
  std::string vocab = "{";
  for (size_t i = 0; i < bpe.vocab.size(); ++i)
    vocab += (i ? ", " : "") + json(bpe.vocab[i]).dump() + ": " + std::to_string(i);
  write_text(dir + "/vocab.json", vocab + "}\n");
  std::string merges = "#version: 0.2\n";
  for (const auto& m : bpe.merges) merges += m + "\n";
  write_text(dir + "/merges.txt", merges);

  const int64_t bos = spec.pieces - 2, eos = spec.pieces - 1;
  json decoder = {{std::to_string(bos), added_token("<|startoftext|>", true)},
                  {std::to_string(eos), added_token("<|endoftext|>", true)}};
  if (spec.pad_token == "!") decoder["0"] = added_token("!", false);  // SDXL-style bigG pad (id 0)
  json cfg = {{"added_tokens_decoder", decoder},
              {"bos_token", "<|startoftext|>"},
              {"clean_up_tokenization_spaces", true},
              {"do_lower_case", true},
              {"eos_token", "<|endoftext|>"},
              {"errors", "replace"},
              {"model_max_length", spec.model_max_length},
              {"pad_token", spec.pad_token},
              {"tokenizer_class", spec.tokenizer_class},
              {"unk_token", "<|endoftext|>"}};
  json map = {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"}, {"pad_token", spec.pad_token},
              {"unk_token", "<|endoftext|>"}};
  make_model_detail::write_json_file(dir + "/special_tokens_map.json", map);
  make_model_detail::write_json_file(dir + "/tokenizer_config.json", cfg);
}

}  // namespace

std::string synth_spiece_model(int64_t pieces) {
  QDIT_CHECK(pieces >= 192, "[make-model] a synthetic sentencepiece model needs at least 192 pieces, asked for ",
             pieces);
  std::vector<std::string> normal{kSpace};
  for (char c = '!'; c <= '~'; ++c) normal.emplace_back(1, c);
  for (char c = '!'; c <= '~'; ++c) normal.push_back(kSpace + std::string(1, c));
  // Lowercase strings by increasing length, each also with the word-start mark.
  std::deque<std::string> prefixes;
  for (char c = 'a'; c <= 'z'; ++c) prefixes.emplace_back(1, c);
  while (static_cast<int64_t>(normal.size()) + 3 < pieces) {
    const std::string p = prefixes.front();
    prefixes.pop_front();
    for (char c = 'a'; c <= 'z' && static_cast<int64_t>(normal.size()) + 3 < pieces; ++c) {
      normal.push_back(p + c);
      if (static_cast<int64_t>(normal.size()) + 3 < pieces) normal.push_back(kSpace + p + c);
      prefixes.push_back(p + c);
    }
  }

  std::string m;
  put_bytes(m, 1, piece_message("<pad>", 0.0f, kControl));
  put_bytes(m, 1, piece_message("</s>", 0.0f, kControl));
  put_bytes(m, 1, piece_message("<unk>", 0.0f, kUnknown));
  // Every piece costs about the same, so Viterbi prefers the fewest (longest) pieces.
  for (size_t i = 0; i < normal.size(); ++i) put_bytes(m, 1, piece_message(normal[i], -1.0f - 1e-4f * i, kNormal));

  std::string trainer;  // TrainerSpec: unigram, T5's special ids (no BOS)
  put_int(trainer, 3, 1);  // model_type UNIGRAM
  put_int(trainer, 4, pieces);
  put_int(trainer, 40, 2);   // unk_id
  put_int(trainer, 41, -1);  // bos_id
  put_int(trainer, 42, 1);   // eos_id
  put_int(trainer, 43, 0);   // pad_id
  put_bytes(trainer, 45, "<unk>");
  put_bytes(trainer, 47, "</s>");
  put_bytes(trainer, 48, "<pad>");
  put_bytes(m, 2, trainer);

  std::string normalizer;  // identity mapping (no NFKC table), T5's whitespace handling
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, 1);  // add_dummy_prefix
  put_int(normalizer, 4, 1);  // remove_extra_whitespaces
  put_int(normalizer, 5, 1);  // escape_whitespaces
  put_bytes(m, 3, normalizer);
  return m;
}

ClipBpe synth_clip_bpe(int64_t vocab_size) {
  QDIT_CHECK(vocab_size >= 515, "[make-model] a synthetic CLIP vocabulary needs at least 515 entries, asked for ",
             vocab_size);
  ClipBpe out;
  out.vocab = byte_symbols();
  for (int i = 0; i < 256; ++i) out.vocab.push_back(out.vocab[i] + "</w>");
  // Merges "p c" and "p c</w>" grow lowercase strings breadth-first; every merge result is a
  // vocab entry, so BPE never produces an unknown symbol.
  const int64_t n_merges = vocab_size - 512 - 2;
  std::deque<std::string> prefixes;
  for (char c = 'a'; c <= 'z'; ++c) prefixes.emplace_back(1, c);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  while (static_cast<int64_t>(out.merges.size()) < n_merges) {
    const std::string p = prefixes.front();
    prefixes.pop_front();
    for (char c : alphabet) {
      for (const char* end : {"", "</w>"}) {
        if (static_cast<int64_t>(out.merges.size()) == n_merges) break;
        out.merges.push_back(p + " " + c + end);
        out.vocab.push_back(p + c + end);
      }
      prefixes.push_back(p + c);
    }
  }
  out.vocab.push_back("<|startoftext|>");
  out.vocab.push_back("<|endoftext|>");
  return out;
}

void write_tokenizer_folder(const std::string& dir, const TokenizerSpec& spec) {
  if (spec.kind == TokenizerSpec::Kind::T5) write_t5_folder(dir, spec);
  else write_clip_folder(dir, spec);
}

}  // namespace qdit::api
