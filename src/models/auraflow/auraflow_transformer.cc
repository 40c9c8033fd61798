#include "qdit/models/auraflow/auraflow_transformer.h"

#include <cmath>

#include "qdit/core/error.h"
#include "qdit/models/dit_inputs.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/models/registry.h"
#include "qdit/nn/embeddings.h"
#include "qdit/nn/layers.h"

namespace qdit::models {

namespace {

constexpr const char* kWhere = "[AuraFlowTransformer2DModel] ";
constexpr int64_t kTimeProjDim = 256;    // Timesteps(num_channels=256, flip_sin_to_cos=True, shift 0, scale=1000)
constexpr float kTimestepScale = 1000.0f;  // the pipeline passes t / 1000

bool explicit_null(const io::JsonConfig& cfg, const std::string& key) {
  auto it = cfg.raw().find(key);
  return it != cfg.raw().end() && it->is_null();
}


Tensor as_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t.contiguous() : t.to(DType::F32); }

}  // namespace

AuraFlowConfig AuraFlowConfig::from_json(const io::JsonConfig& cfg) {
  const std::string where = "[" + cfg.path() + "]";
  // null for these would make diffusers fail (out_channels in unpatchify, the table's size in
  // torch.randn), so it is reported here with the key.
  for (const char* key : {"out_channels", "pos_embed_max_size"})
    QDIT_CHECK(!explicit_null(cfg, key), where, " key '", key, "' must be an integer, found null");
  AuraFlowConfig c;
  // Defaults are AuraFlowTransformer2DModel.__init__'s (diffusers 0.30.3).
  c.sample_size = cfg.get_or<int64_t>("sample_size", 64);
  c.patch_size = cfg.get_or<int64_t>("patch_size", 2);
  c.in_channels = cfg.get_or<int64_t>("in_channels", 4);
  c.num_mmdit_layers = cfg.get_or<int64_t>("num_mmdit_layers", 4);
  c.num_single_dit_layers = cfg.get_or<int64_t>("num_single_dit_layers", 32);
  c.head_dim = cfg.get_or<int64_t>("attention_head_dim", 256);
  c.heads = cfg.get_or<int64_t>("num_attention_heads", 12);
  c.joint_attention_dim = cfg.get_or<int64_t>("joint_attention_dim", 2048);
  c.caption_projection_dim = cfg.get_or<int64_t>("caption_projection_dim", 3072);
  c.out_channels = cfg.get_or<int64_t>("out_channels", 4);
  c.pos_embed_max_size = cfg.get_or<int64_t>("pos_embed_max_size", 1024);

  QDIT_CHECK(c.heads > 0 && c.head_dim > 0, where,
             " expected positive num_attention_heads and attention_head_dim, found ", c.heads, " and ", c.head_dim);
  QDIT_CHECK(c.in_channels > 0 && c.out_channels > 0, where, " expected positive in_channels/out_channels, found ",
             c.in_channels, "/", c.out_channels);
  QDIT_CHECK(c.num_mmdit_layers >= 0, where, " key 'num_mmdit_layers' must be >= 0, found ", c.num_mmdit_layers);
  QDIT_CHECK(c.num_single_dit_layers >= 0, where, " key 'num_single_dit_layers' must be >= 0, found ",
             c.num_single_dit_layers);
  QDIT_CHECK(c.patch_size > 0, where, " key 'patch_size' must be positive, found ", c.patch_size);
  QDIT_CHECK(c.sample_size > 0, where, " key 'sample_size' must be positive, found ", c.sample_size);
  QDIT_CHECK(c.joint_attention_dim > 0, where, " key 'joint_attention_dim' must be positive, found ",
             c.joint_attention_dim);
  QDIT_CHECK(c.pos_embed_max_size > 0, where, " key 'pos_embed_max_size' must be positive, found ",
             c.pos_embed_max_size);
  c.inner_dim = c.heads * c.head_dim;
  // The projected caption is concatenated with the [1, 8, inner_dim] register tokens.
  QDIT_CHECK(c.caption_projection_dim == c.inner_dim, where, " key 'caption_projection_dim' (",
             c.caption_projection_dim, ") must equal num_attention_heads*attention_head_dim (", c.inner_dim, ")");
  // int(pos_embed_max_size ** 0.5): a non-square size leaves the table's last rows unused.
  c.pos_grid = static_cast<int64_t>(std::sqrt(static_cast<double>(c.pos_embed_max_size)));
  return c;
}

PosCrop auraflow_pos_crop(int64_t pos_grid, int64_t grid_h, int64_t grid_w) {
  // Not (pos_grid - grid) // 2 as in SD3: for odd differences the window sits one row/col lower.
  return {pos_grid / 2 - grid_h / 2, pos_grid / 2 - grid_w / 2};
}

AuraFlowTransformer::AuraFlowTransformer(const ModelSource& src) {
  QDIT_CHECK(src.config && src.weights, kWhere, "component ", src.component, " has no config or weights");
  cfg_ = AuraFlowConfig::from_json(*src.config);
  const int64_t d = cfg_.inner_dim, p = cfg_.patch_size, m = cfg_.pos_embed_max_size;
  const nn::ModuleContext& ctx = src.ctx;
  nn::WeightBinder root(src.weights, src.component);

  // AuraFlowPatchEmbed: a Linear over patches flattened as (c, p, q), and a learned table.
  patch_proj_ = nn::Linear(root, "pos_embed.proj", cfg_.in_channels * p * p, d, true, ctx);
  pos_table_ = nn::to_f32_param(root.get("pos_embed.pos_embed", {1, m, d}));
  if (pos_table_.defined()) pos_table_ = pos_table_.reshape({m, d});
  register_tokens_ = nn::to_f32_param(root.get("register_tokens", {1, AuraFlowConfig::kRegisterTokens, d}));

  time_1_ = nn::Linear(root, "time_step_proj.linear_1", kTimeProjDim, d, true, ctx);
  time_2_ = nn::Linear(root, "time_step_proj.linear_2", d, d, true, ctx);
  context_embedder_ = nn::Linear(root, "context_embedder", cfg_.joint_attention_dim, cfg_.caption_projection_dim,
                                 false, ctx);

  joint_blocks_ = nn::LazyBlocks<auraflow::JointBlock>(
      root, "joint_transformer_blocks", cfg_.num_mmdit_layers, ctx,
      [d, heads = cfg_.heads](const nn::WeightBinder& b, int64_t, const nn::ModuleContext& c) {
        return auraflow::JointBlock(b, d, heads, c);
      });
  single_blocks_ = nn::LazyBlocks<auraflow::SingleBlock>(
      root, "single_transformer_blocks", cfg_.num_single_dit_layers, ctx,
      [d, heads = cfg_.heads](const nn::WeightBinder& b, int64_t, const nn::ModuleContext& c) {
        return auraflow::SingleBlock(b, d, heads, c);
      });

  norm_out_ = nn::Linear(root, "norm_out.linear", d, 2 * d, false, ctx);
  proj_out_ = nn::Linear(root, "proj_out", d, p * p * cfg_.out_channels, false, ctx);

  root.finish();  // throws listing every missing / wrong-shape tensor

  weight_bytes_ = pos_table_.nbytes() + register_tokens_.nbytes();
  for (const nn::Linear* l : {&patch_proj_, &time_1_, &time_2_, &context_embedder_, &norm_out_, &proj_out_})
    weight_bytes_ += l->weight_bytes();
  weight_bytes_ += joint_blocks_.weight_bytes() + single_blocks_.weight_bytes();
}

Tensor AuraFlowTransformer::pos_embed(int64_t grid_h, int64_t grid_w) const {
  std::lock_guard<std::mutex> lock(pos_mu_);
  if (grid_h != pos_h_ || grid_w != pos_w_) {
    const int64_t d = cfg_.inner_dim, s = cfg_.pos_grid;
    const PosCrop c = auraflow_pos_crop(s, grid_h, grid_w);
    // Row index row * s + col over the first s*s rows of the table.
    pos_cache_ = pos_table_.slice(0, 0, s * s)
                     .reshape({s, s, d})
                     .slice(0, c.top, c.top + grid_h)
                     .slice(1, c.left, c.left + grid_w)
                     .contiguous()
                     .reshape({grid_h * grid_w, d});
    pos_h_ = grid_h;
    pos_w_ = grid_w;
  }
  return pos_cache_;
}

Tensor AuraFlowTransformer::forward(const DiTInputs& in) const {
  const int64_t d = cfg_.inner_dim, p = cfg_.patch_size, cin = cfg_.in_channels, cout = cfg_.out_channels;
  // ---- Input checks (every message names the input and the expected shape).
  const PatchGrid grid = check_patched_latents(in.latents, cin, p, kWhere);
  const int64_t batch = grid.batch, height = grid.height, width = grid.width;
  const int64_t gh = height / p, gw = width / p, n = gh * gw;
  QDIT_CHECK(gh <= cfg_.pos_grid && gw <= cfg_.pos_grid, kWhere, "latents: patch grid ", gh, "x", gw,
             " exceeds the ", cfg_.pos_grid, "x", cfg_.pos_grid, " position table (pos_embed_max_size ",
             cfg_.pos_embed_max_size, "; latents ", in.latents.desc(), ")");
  const Tensor& ehs = in.encoder_hidden_states;
  // L = 0 is allowed: the text stream is then the register tokens alone, as in diffusers.
  QDIT_CHECK(ehs.defined() && ehs.dim() == 3 && ehs.size(0) == batch && ehs.size(2) == cfg_.joint_attention_dim,
             kWhere, "encoder_hidden_states: expected [", batch, ", L, ", cfg_.joint_attention_dim, "], got ",
             desc_or_undefined(ehs));
  QDIT_CHECK(in.timestep.size() == static_cast<size_t>(batch) || in.timestep.size() == 1, kWhere,
             "timestep: expected ", batch, " values (or 1), got ", in.timestep.size());
  QDIT_CHECK(!in.encoder_attention_mask.defined(), kWhere,
             "encoder_attention_mask: AuraFlow takes no mask (the pipeline zeroes padded embeddings), got ",
             desc_or_undefined(in.encoder_attention_mask));
  QDIT_CHECK(!in.pooled_projections.defined(), kWhere, "pooled_projections: AuraFlow takes none, got ",
             desc_or_undefined(in.pooled_projections));

  // ---- Patch embedding: [B, C, H, W] -> [B, h, w, C, p, q] -> Linear -> [B, h*w, D], + cropped table.
  Tensor x;
  {
    const Tensor patches =
        as_f32(in.latents).reshape({batch, cin, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5}).contiguous();
    x = patch_proj_(patches.reshape({batch, n, cin * p * p}));
  }
  kernels::add_inplace(x, pos_embed(gh, gw));

  // ---- Conditioning: temb = TimestepEmbedding(Timesteps(t) with scale 1000); every AdaLN and the
  // final block take SiLU(temb).
  std::vector<float> t = in.timestep;
  if (t.size() == 1 && batch > 1) t.assign(static_cast<size_t>(batch), in.timestep[0]);
  kernels::GemmOptions silu;
  silu.activation = kernels::Activation::Silu;
  const Tensor temb = time_2_(time_1_(nn::timestep_embedding(t, kTimeProjDim, true, 0.0f, kTimestepScale), silu));
  const Tensor silu_temb = kernels::activation(temb, kernels::Activation::Silu);

  // ---- Text stream: cat([register_tokens repeated over B, context_embedder(ehs)]).
  Tensor context;
  {
    std::vector<Tensor> parts(static_cast<size_t>(batch), register_tokens_);
    const Tensor regs = kernels::concat(parts, 0);
    context = ehs.size(1) == 0 ? regs : kernels::concat({regs, context_embedder_(as_f32(ehs))}, 1);
  }

  // ---- Blocks: MMDiT on two streams, then single blocks on cat([text, image]).
  joint_blocks_.for_each([&](const auraflow::JointBlock& blk) { blk.forward(x, context, silu_temb); });
  if (single_blocks_.size() > 0) {
    const int64_t l = context.size(1);
    Tensor combined = kernels::concat({context, x}, 1);
    context = Tensor();
    single_blocks_.for_each([&](const auraflow::SingleBlock& blk) { blk.forward(combined, silu_temb); });
    x = combined.slice(1, l, l + n).contiguous();
  }
  context = Tensor();

  // ---- AuraFlowPreFinalBlock: (scale, shift) = Linear(SiLU(temb)); x * (1 + scale) + shift, no norm.
  const Tensor mod = norm_out_(silu_temb).reshape({batch, 2, d});
  x = kernels::modulate(x, mod.select(1, 1), mod.select(1, 0));
  const Tensor y = proj_out_(x);  // [B, N, p*q*C_out]
  x = Tensor();

  // ---- Unpatchify: "nhwpqc->nchpwq".
  return y.reshape({batch, gh, gw, p, p, cout}).permute({0, 5, 1, 3, 2, 4}).contiguous().reshape(
      {batch, cout, height, width});
}

void register_auraflow_models() {
  register_model("AuraFlowTransformer2DModel",
                 [](const ModelSource& src) { return std::make_unique<AuraFlowTransformer>(src); });
}

}  // namespace qdit::models
