// LinearGroup: fused q/k/v equals the separate projections (float and quantized per-row schemes),
// keeps float when a member is excluded from quantization, and reports missing members by path.
#include <gtest/gtest.h>

#include <filesystem>

#include "qdit/core/error.h"
#include "qdit/io/safetensors.h"
#include "qdit/io/weight_source.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/norm.h"
#include "qdit/nn/linear_group.h"
#include "qdit/nn/quantizing_factory.h"
#include "support/random.h"

namespace qdit::nn {
namespace {

std::shared_ptr<io::SafetensorsWeights> attention_weights(bool drop_v = false) {
  const std::string file = (std::filesystem::temp_directory_path() /
                            ("qdit_linear_group_" + std::to_string(::getpid()) + (drop_v ? "_nov" : "") + ".safetensors"))
                               .string();
  std::vector<std::pair<std::string, Tensor>> t;
  uint32_t seed = 1;
  for (const char* n : {"to_q", "to_k", "to_v"}) {
    if (drop_v && std::string(n) == "to_v") continue;
    t.emplace_back(std::string("attn.") + n + ".weight", qdit::testing::random_tensor({24, 40}, seed++));
    t.emplace_back(std::string("attn.") + n + ".bias", qdit::testing::random_tensor({24}, seed++));
  }
  io::save_safetensors(file, t);
  return io::SafetensorsWeights::open(file);
}

std::vector<Tensor> project(const ModuleContext& ctx, const Tensor& x, bool* fused = nullptr) {
  WeightBinder root(attention_weights(), "test");
  LinearGroup g(root.sub("attn"), {"to_q", "to_k", "to_v"}, "to_qkv", 40, {24, 24, 24}, true, ctx);
  root.finish();
  if (fused) *fused = g.fused();
  return g(x);
}

TEST(LinearGroup, FusedEqualsSeparate) {
  const Tensor x = qdit::testing::random_tensor({2, 7, 40}, 99);
  for (const char* scheme : {"", "int8wo", "int8dq", "nf4", "qint8"}) {
    ModuleContext sep, fus;
    if (*scheme) {
      sep = context_for_component(sep, quant::PipelineQuantConfig::parse_spec(scheme), "transformer");
      fus = sep;
    }
    fus.fuse_qkv = true;
    bool is_fused = false;
    auto a = project(sep, x), b = project(fus, x, &is_fused);
    EXPECT_TRUE(is_fused);
    ASSERT_EQ(b.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(b[i].shape(), (Shape{2, 7, 24}));
      EXPECT_LE(qdit::testing::max_abs_diff(a[i], b[i]), 1e-5f) << scheme << " member " << i;
    }
  }
}

// A deferred norm input (int8dq: the norm writes the int8 rows itself) gives exactly what the
// norm's f32 rows give, fused or not, quantized or not.
TEST(LinearGroup, DeferredNormInputEqualsNormThenLinear) {
  const Tensor x = qdit::testing::random_tensor({2, 7, 40}, 98, -2, 2);
  const Tensor mod = qdit::testing::random_tensor({2, 80}, 97);
  const Tensor shift = mod.slice(1, 0, 40), scale = mod.slice(1, 40, 80);
  const Tensor rows = kernels::layer_norm_modulate(x, shift, scale, 1e-6f);
  for (const char* scheme : {"", "int8dq", "int8wo"})
    for (bool fuse : {false, true}) {
      ModuleContext ctx;
      if (*scheme) ctx = context_for_component(ctx, quant::PipelineQuantConfig::parse_spec(scheme), "transformer");
      ctx.fuse_qkv = fuse;
      WeightBinder root(attention_weights(), "test");
      LinearGroup g(root.sub("attn"), {"to_q", "to_k", "to_v"}, "to_qkv", 40, {24, 24, 24}, true, ctx);
      root.finish();
      const std::vector<Tensor> want = g.views(rows, 8);
      const std::vector<Tensor> got = g.views(LinearInput::norm_modulated(x, shift, scale, 1e-6f), 8);
      ASSERT_EQ(got.size(), 3u);
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(got[i].shape(), (Shape{2, 7, 3, 8}));
        EXPECT_EQ(qdit::testing::max_abs_diff(want[i], got[i]), 0.0f) << scheme << " fused " << fuse << " member " << i;
      }
    }
}

// prefer = BF16 (bf16 compute): the views are bf16 where the kernel writes it, holding the f32
// result rounded to nearest even; f32 elsewhere (f32 compute kernels).
TEST(LinearGroup, Bf16ViewsAreTheRoundedF32Views) {
  const Tensor x = qdit::testing::random_tensor({2, 7, 40}, 96, -2, 2);
  for (const char* scheme : {"", "int8dq"})
    for (DType compute : {DType::F32, DType::BF16}) {
      ModuleContext ctx;
      if (*scheme) ctx = context_for_component(ctx, quant::PipelineQuantConfig::parse_spec(scheme), "transformer");
      ctx.compute = compute;
      ctx.fuse_qkv = true;
      WeightBinder root(attention_weights(), "test");
      LinearGroup g(root.sub("attn"), {"to_q", "to_k", "to_v"}, "to_qkv", 40, {24, 24, 24}, true, ctx);
      root.finish();
      const std::vector<Tensor> f32 = g.views(x, 8), bf = g.views(x, 8, DType::BF16);
      const bool rounds = *scheme || (compute == DType::BF16 && kernels::native_bf16_gemm_available());
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(bf[i].dtype(), rounds ? DType::BF16 : DType::F32) << scheme << " member " << i;
        const Tensor want = rounds ? f32[i].to(DType::BF16) : f32[i];
        EXPECT_EQ(qdit::testing::max_abs_diff(bf[i].to(DType::F32), want.to(DType::F32)), 0.0f) << scheme << " member " << i;
      }
    }
}

TEST(LinearGroup, ExcludedMemberKeepsTheFusedLinearFloat) {
  const Tensor x = qdit::testing::random_tensor({1, 5, 40}, 7);
  ModuleContext plain;
  ModuleContext q = context_for_component(plain, quant::PipelineQuantConfig::parse_spec("nf4", {"attn.to_k"}), "t");
  q.fuse_qkv = true;
  auto f = project(plain, x), g = project(q, x);
  for (int i = 0; i < 3; ++i) EXPECT_LE(qdit::testing::max_abs_diff(f[i], g[i]), 1e-5f) << i;
}

TEST(LinearGroup, MissingMemberIsReportedByPath) {
  ModuleContext ctx;
  ctx.fuse_qkv = true;
  WeightBinder root(attention_weights(true), "test");
  LinearGroup g(root.sub("attn"), {"to_q", "to_k", "to_v"}, "to_qkv", 40, {24, 24, 24}, true, ctx);
  try {
    root.finish();
    FAIL() << "missing to_v accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attn.to_v.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qdit::nn
