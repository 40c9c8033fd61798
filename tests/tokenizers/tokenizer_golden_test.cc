// Golden tests: every prompt of tokenizer_t5 / tokenizer_clip (pieces or BPE tokens, untruncated
// ids, and every padded ids/mask output exactly), and the token ids the text pipelines fed to their
// encoders (tok.* outputs), each recomputed from the pipeline's own tokenizer folders.
#include <map>
#include <set>

#include "golden_util.h"
#include "qdit/tokenizers/clip_tokenizer.h"
#include "qdit/tokenizers/t5_tokenizer.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::tokenizers {
namespace {

using namespace testing;
using Rows = std::vector<std::vector<int64_t>>;

std::vector<std::string> prompts_of(const nlohmann::json& c) {
  return c.at("prompts").get<std::vector<std::string>>();
}

// The prompts in case.json must be the bytes recorded in inputs.safetensors.
void expect_prompts_match_inputs(const std::string& name, const std::vector<std::string>& prompts) {
  auto in = io::SafetensorsFile::open(golden_dir(name) + "/inputs.safetensors");
  const Rows bytes = i64_rows(*in, "prompts_utf8");
  const auto nbytes = i64_vector(*in, "prompts_nbytes");
  ASSERT_EQ(bytes.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(bytes_row_to_string(bytes[i], static_cast<size_t>(nbytes[i])), prompts[i]) << "prompt " << i;
}

void expect_rows_eq(const Rows& got, const Rows& want, const std::vector<std::string>& texts,
                    const std::string& key) {
  ASSERT_EQ(got.size(), want.size()) << key;
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(got[i], want[i]) << key << " row " << i << " text \"" << texts.at(i) << "\"";
}

// ----------------------------------------------------------------------------------------- T5

TEST(T5Golden, PiecesAndUntruncatedIdsPerPrompt) {
  const auto c = read_case_json("tokenizer_t5");
  const auto tok = T5Tokenizer::load(golden_dir("tokenizer_t5") + "/" + c.at("tokenizer_dir").get<std::string>());
  const auto& per = c.at("per_prompt");
  ASSERT_EQ(per.size(), c.at("prompts").size());
  for (const auto& p : per) {
    const std::string text = p.at("prompt");
    EXPECT_EQ(tok->tokenize(text), p.at("pieces").get<std::vector<std::string>>()) << text;
    EXPECT_EQ(tok->encode_one(text, 0, /*truncate=*/false), p.at("ids_untruncated").get<std::vector<int64_t>>())
        << text;
  }
}

TEST(T5Golden, SpecialIdsAndSizes) {
  const auto c = read_case_json("tokenizer_t5");
  const auto& info = c.at("tokenizer");
  const auto tok = load_tokenizer(golden_dir("tokenizer_t5") + "/" + c.at("tokenizer_dir").get<std::string>());
  auto* t5 = dynamic_cast<T5Tokenizer*>(tok.get());
  ASSERT_NE(t5, nullptr);
  EXPECT_EQ(t5->vocab_size(), info.at("len_tokenizer").get<int64_t>());
  EXPECT_EQ(t5->sp_piece_count(), info.at("spm_pieces").get<int64_t>());
  EXPECT_EQ(t5->pad_id(), info.at("pad_id").get<int64_t>());
  EXPECT_EQ(t5->eos_id(), info.at("eos_id").get<int64_t>());
  EXPECT_EQ(t5->unk_id(), info.at("unk_id").get<int64_t>());
  EXPECT_EQ(t5->token_to_id("<extra_id_0>"), info.at("extra_id_0").get<int64_t>());
  const int64_t n_extra = info.at("extra_ids").get<int64_t>();
  EXPECT_EQ(t5->token_to_id("<extra_id_" + std::to_string(n_extra - 1) + ">"), t5->sp_piece_count());
  EXPECT_EQ(t5->model_max_length(), info.at("model_max_length").get<int64_t>());
}

TEST(T5Golden, EveryOutputKey) {
  const auto c = read_case_json("tokenizer_t5");
  const auto prompts = prompts_of(c);
  expect_prompts_match_inputs("tokenizer_t5", prompts);
  const auto tok = load_tokenizer(golden_dir("tokenizer_t5") + "/" + c.at("tokenizer_dir").get<std::string>());
  std::vector<std::string> pixart;
  for (const auto& p : prompts) pixart.push_back(pixart_preprocess(p));

  auto out = io::SafetensorsFile::open(golden_dir("tokenizer_t5") + "/outputs.safetensors");
  std::set<int64_t> lengths_seen;
  size_t checked = 0;
  for (const auto& rec : out->records()) {
    SCOPED_TRACE(rec.name);
    // "<prefix>L<n>.<field>", prefix "" or "pixart_".
    const size_t dot = rec.name.find('.');
    ASSERT_NE(dot, std::string::npos);
    std::string head = rec.name.substr(0, dot);
    const std::string field = rec.name.substr(dot + 1);
    const bool is_pixart = head.rfind("pixart_", 0) == 0;
    if (is_pixart) head = head.substr(7);
    ASSERT_EQ(head[0], 'L');
    const int max_length = std::stoi(head.substr(1));
    lengths_seen.insert(max_length);
    const auto& texts = is_pixart ? pixart : prompts;
    const TokenizedBatch b = tok->encode(texts, max_length, /*pad_to_max=*/true, /*truncate=*/true);
    const Rows want = i64_rows(*out, rec.name);
    ASSERT_EQ(want.at(0).size(), static_cast<size_t>(max_length));
    if (field == "input_ids") {
      expect_rows_eq(b.ids, want, texts, rec.name);
    } else if (field == "attention_mask") {
      expect_rows_eq(b.mask, want, texts, rec.name);
    } else {
      FAIL() << "unexpected output field " << field;
    }
    ++checked;
  }
  EXPECT_EQ(checked, out->records().size());
  std::set<int64_t> lengths_case;
  for (const auto& l : c.at("max_lengths")) lengths_case.insert(l.get<int64_t>());
  EXPECT_EQ(lengths_seen, lengths_case);
  EXPECT_EQ(checked, 2 * lengths_case.size() + 2);  // ids + mask per length, plus pixart_L48.*
}

// --------------------------------------------------------------------------------------- CLIP

std::string clip_dir(const nlohmann::json& c, const std::string& which) {
  return golden_dir("tokenizer_clip") + "/" + c.at("tokenizer_dirs").at(which).get<std::string>();
}

TEST(ClipGolden, TokensAndUntruncatedIdsPerPrompt) {
  const auto c = read_case_json("tokenizer_clip");
  const auto tok = ClipTokenizer::load(clip_dir(c, "clip_l"));
  const auto& per = c.at("per_prompt");
  ASSERT_EQ(per.size(), c.at("prompts").size());
  for (const auto& p : per) {
    const std::string text = p.at("prompt");
    EXPECT_EQ(tok->tokenize(text), p.at("tokens").get<std::vector<std::string>>()) << text;
    EXPECT_EQ(tok->encode_one(text, 0, /*truncate=*/false), p.at("ids_untruncated").get<std::vector<int64_t>>())
        << text;
  }
}

TEST(ClipGolden, SpecialIdsAndSizes) {
  const auto c = read_case_json("tokenizer_clip");
  const auto& info = c.at("tokenizer");
  for (const std::string which : {"clip_l", "clip_g"}) {
    SCOPED_TRACE(which);
    const auto tok = load_tokenizer(clip_dir(c, which));
    auto* clip = dynamic_cast<ClipTokenizer*>(tok.get());
    ASSERT_NE(clip, nullptr);
    EXPECT_EQ(clip->vocab_size(), info.at("len_tokenizer").get<int64_t>());
    EXPECT_EQ(clip->bos_id(), info.at("bos_id").get<int64_t>());
    EXPECT_EQ(clip->eos_id(), info.at("eos_id").get<int64_t>());
    EXPECT_EQ(clip->pad_id(), info.at("pad_id_" + which).get<int64_t>());
    EXPECT_EQ(clip->token_to_id(info.at("pad_token_" + which).get<std::string>()), clip->pad_id());
    EXPECT_EQ(clip->model_max_length(), c.at("max_length").get<int64_t>());
  }
}

TEST(ClipGolden, EveryOutputKey) {
  const auto c = read_case_json("tokenizer_clip");
  const auto prompts = prompts_of(c);
  expect_prompts_match_inputs("tokenizer_clip", prompts);
  const int max_length = c.at("max_length").get<int>();
  auto out = io::SafetensorsFile::open(golden_dir("tokenizer_clip") + "/outputs.safetensors");
  std::map<std::string, TokenizedBatch> batches;
  size_t checked = 0;
  for (const auto& rec : out->records()) {
    SCOPED_TRACE(rec.name);
    const size_t dot = rec.name.find('.');
    ASSERT_NE(dot, std::string::npos);
    const std::string which = rec.name.substr(0, dot), field = rec.name.substr(dot + 1);
    if (!batches.count(which))
      batches[which] = load_tokenizer(clip_dir(c, which))->encode(prompts, max_length, true, true);
    const Rows want = i64_rows(*out, rec.name);
    ASSERT_EQ(want.at(0).size(), static_cast<size_t>(max_length));
    if (field == "input_ids") {
      expect_rows_eq(batches[which].ids, want, prompts, rec.name);
    } else if (field == "attention_mask") {
      expect_rows_eq(batches[which].mask, want, prompts, rec.name);
    } else {
      FAIL() << "unexpected output field " << field;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 4u);  // clip_l / clip_g x ids / mask
  // The CLIP-G pad token "!" is an added token: every "!" in the text becomes id 0 there.
  const auto clip_l = ClipTokenizer::load(clip_dir(c, "clip_l"));
  const auto clip_g = ClipTokenizer::load(clip_dir(c, "clip_g"));
  EXPECT_EQ(clip_g->encode_plain("!"), std::vector<int64_t>{0});
  EXPECT_EQ(clip_l->encode_plain("!"), std::vector<int64_t>{clip_l->token_to_id("!</w>")});
}

// ---------------------------------------------------------------------------- text pipelines

struct EncoderSlot {
  std::string tokenizer_dir;  // inside pipeline/
  bool is_t5;                 // T5: max_sequence_length; CLIP: the tokenizer's model_max_length
  bool lowercase;             // PixArt's lower().strip()
};

void check_pipeline_tokens(const std::string& name, const std::map<std::string, EncoderSlot>& slots) {
  const auto c = read_case_json(name);
  const auto& kw = c.at("call_kwargs");
  const int max_seq = kw.at("max_sequence_length").get<int>();
  std::map<std::string, std::string> texts = {{"prompt", kw.at("prompt").get<std::string>()}};
  if (kw.contains("negative_prompt") && !kw.at("negative_prompt").is_null())
    texts["negative"] = kw.at("negative_prompt").get<std::string>();

  auto in = io::SafetensorsFile::open(golden_dir(name) + "/inputs.safetensors");
  EXPECT_EQ(bytes_row_to_string(i64_vector(*in, "prompt_utf8"), in->find("prompt_utf8")->numel()),
            texts["prompt"]);

  auto out = io::SafetensorsFile::open(golden_dir(name) + "/outputs.safetensors");
  size_t checked = 0;
  std::set<std::string> slots_seen;
  for (const auto& rec : out->records()) {
    if (rec.name.rfind("tok.", 0) != 0) continue;
    SCOPED_TRACE(name + " " + rec.name);
    // tok.<encoder>.<prompt|negative>.<input_ids|attention_mask>
    const std::string rest = rec.name.substr(4);
    const size_t d1 = rest.find('.'), d2 = rest.find('.', d1 + 1);
    ASSERT_NE(d2, std::string::npos);
    const std::string enc = rest.substr(0, d1), which = rest.substr(d1 + 1, d2 - d1 - 1);
    const std::string field = rest.substr(d2 + 1);
    ASSERT_TRUE(slots.count(enc)) << "no tokenizer slot for encoder " << enc;
    ASSERT_TRUE(texts.count(which)) << "no text for " << which;
    const EncoderSlot& slot = slots.at(enc);
    const auto tok = load_tokenizer(golden_dir(name) + "/pipeline/" + slot.tokenizer_dir);
    const int max_length = slot.is_t5 ? max_seq : static_cast<int>(tok->model_max_length());
    std::string text = texts.at(which);
    if (slot.lowercase) text = pixart_preprocess(text);
    const TokenizedBatch b = tok->encode({text}, max_length, true, true);
    const Rows want = i64_rows(*out, rec.name);
    ASSERT_EQ(want.size(), 1u);
    ASSERT_EQ(want[0].size(), static_cast<size_t>(max_length));
    if (field == "input_ids") {
      EXPECT_EQ(b.ids[0], want[0]) << text;
    } else if (field == "attention_mask") {
      EXPECT_EQ(b.mask[0], want[0]) << text;
    } else {
      FAIL() << "unexpected field " << field;
    }
    slots_seen.insert(enc);
    ++checked;
  }
  EXPECT_EQ(slots_seen.size(), slots.size()) << "every tokenizer slot has recorded ids";
  EXPECT_GE(checked, slots.size());
}

TEST(PipelineTokens, PixArtSigma) {
  check_pipeline_tokens("pipeline_pixart_sigma_text", {{"t5", {"tokenizer", true, true}}});
}

TEST(PipelineTokens, SD3) {
  check_pipeline_tokens("pipeline_sd3_text", {{"clip_l", {"tokenizer", false, false}},
                                              {"clip_g", {"tokenizer_2", false, false}},
                                              {"t5", {"tokenizer_3", true, false}}});
}

TEST(PipelineTokens, FluxDev) {
  check_pipeline_tokens("pipeline_flux_dev_text",
                        {{"clip_l", {"tokenizer", false, false}}, {"t5", {"tokenizer_2", true, false}}});
}

TEST(PipelineTokens, FluxSchnell) {
  check_pipeline_tokens("pipeline_flux_schnell_text",
                        {{"clip_l", {"tokenizer", false, false}}, {"t5", {"tokenizer_2", true, false}}});
}

TEST(PipelineTokens, AuraFlow) {
  check_pipeline_tokens("pipeline_auraflow_text", {{"umt5", {"tokenizer", true, false}}});
}

}  // namespace
}  // namespace qdit::tokenizers
