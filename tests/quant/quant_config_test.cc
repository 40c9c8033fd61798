// PipelineQuantConfig from the CLI spec and from diffusers-style JSON; exclusion patterns.
#include <gtest/gtest.h>

#include "qdit/core/error.h"
#include "qdit/quant/quant_config.h"

namespace qdit::quant {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantSpec, GlobalSchemeAppliesToEveryComponent) {
  auto c = PipelineQuantConfig::parse_spec("int8wo", {"proj_out"});
  ASSERT_TRUE(c.for_component("transformer"));
  EXPECT_EQ(c.for_component("vae")->scheme, "int8wo");
  EXPECT_EQ(c.for_component("text_encoder_2")->exclude, (std::vector<std::string>{"proj_out"}));
}

TEST(QuantSpec, ComponentListAndMapping) {
  auto c = PipelineQuantConfig::parse_spec("nf4_dq@transformer+text_encoder_3");
  EXPECT_EQ(c.for_component("transformer")->scheme, "nf4_dq");
  EXPECT_TRUE(c.for_component("text_encoder_3"));
  EXPECT_FALSE(c.for_component("text_encoder"));
  auto m = PipelineQuantConfig::parse_spec("transformer=int8dq,text_encoder=int4wo-64");
  EXPECT_EQ(m.for_component("transformer")->scheme, "int8dq");
  EXPECT_EQ(m.for_component("text_encoder")->scheme, "int4wo-64");
  EXPECT_FALSE(m.for_component("vae"));
  EXPECT_NE(error_of([] { PipelineQuantConfig::parse_spec("transformer=int9wo"); }).find("int9wo"), std::string::npos);
  EXPECT_NE(error_of([] { PipelineQuantConfig::parse_spec("=int8wo"); }).find("COMPONENT=SCHEME"), std::string::npos);
}

TEST(QuantJson, GlobalModeMirrorsPipelineQuantizationConfig) {
  auto c = PipelineQuantConfig::from_json_text(
      R"({"quant_backend": "torchao", "quant_kwargs": {"quant_type": "int4wo", "group_size": 64,
          "modules_to_not_convert": ["proj_out", "x_embedder"]}, "components_to_quantize": ["transformer"]})",
      "cfg.json");
  EXPECT_EQ(c.for_component("transformer")->scheme, "int4wo-64");
  EXPECT_EQ(c.for_component("transformer")->exclude, (std::vector<std::string>{"proj_out", "x_embedder"}));
  EXPECT_FALSE(c.for_component("text_encoder"));
}

TEST(QuantJson, GranularModeWithEachBackendsVocabulary) {
  auto c = PipelineQuantConfig::from_json_text(
      R"({"quant_mapping": {
           "transformer": {"quant_backend": "quanto", "quant_kwargs": {"weights_dtype": "float8"}},
           "text_encoder": {"quant_backend": "bitsandbytes_4bit",
                            "quant_kwargs": {"load_in_4bit": true, "bnb_4bit_quant_type": "nf4",
                                             "bnb_4bit_use_double_quant": true}},
           "text_encoder_2": {"quant_backend": "bitsandbytes_8bit", "quant_kwargs": {"load_in_8bit": true}},
           "text_encoder_3": {"quant_backend": "bitsandbytes_4bit", "quant_kwargs": {"load_in_4bit": true}}}})",
      "cfg.json");
  EXPECT_EQ(c.for_component("transformer")->scheme, "qfloat8");
  EXPECT_EQ(c.for_component("text_encoder")->scheme, "nf4_dq");
  EXPECT_EQ(c.for_component("text_encoder_2")->scheme, "llm_int8");
  EXPECT_EQ(c.for_component("text_encoder_3")->scheme, "fp4");  // bitsandbytes' default 4-bit type
}

TEST(QuantJson, ErrorsNameTheFileAndKey) {
  EXPECT_NE(error_of([] { PipelineQuantConfig::from_json_text("{", "q.json"); }).find("q.json"), std::string::npos);
  std::string e = error_of([] {
    PipelineQuantConfig::from_json_text(R"({"quant_kwargs": {"quant_type": "int8wo", "bogus": 1}})", "q.json");
  });
  EXPECT_NE(e.find("bogus"), std::string::npos) << e;
  e = error_of([] {
    PipelineQuantConfig::from_json_text(R"({"quant_mapping": {}, "quant_kwargs": {"quant_type": "int8wo"}})", "q.json");
  });
  EXPECT_NE(e.find("not both"), std::string::npos) << e;
  e = error_of([] { PipelineQuantConfig::from_json_text(R"({"quant_kwargs": {}})", "q.json"); });
  EXPECT_NE(e.find("no scheme"), std::string::npos) << e;
  e = error_of([] { PipelineQuantConfig::from_json_text(R"({"components": 1})", "q.json"); });
  EXPECT_NE(e.find("'components'"), std::string::npos) << e;
}

TEST(Exclusion, FnmatchOnPathNameSuffixAndAncestor) {
  const std::vector<std::string> p = {"proj_out"};
  EXPECT_TRUE(module_excluded("proj_out", p));
  EXPECT_TRUE(module_excluded("single_transformer_blocks.3.proj_out", p));  // last name
  EXPECT_FALSE(module_excluded("proj_out_extra", p));
  EXPECT_TRUE(module_excluded("transformer_blocks.0.attn.to_q", {"attn.to_q"}));            // dotted suffix
  EXPECT_TRUE(module_excluded("transformer_blocks.0.attn.to_k", {"transformer_blocks.0"}));  // ancestor
  EXPECT_FALSE(module_excluded("transformer_blocks.10.attn.to_k", {"transformer_blocks.1"}));
  EXPECT_TRUE(module_excluded("transformer_blocks.7.ff.net.2", {"transformer_blocks.*.ff.*"}));
  EXPECT_TRUE(module_excluded("norm1.linear", {"norm*"}));
  EXPECT_FALSE(module_excluded("attn.to_q", {}));
}

}  // namespace
}  // namespace qdit::quant
