#include "qdit/models/flux/flux_transformer.h"

#include <numeric>

#include "qdit/core/error.h"
#include "qdit/models/dit_inputs.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/layout.h"
#include "qdit/kernels/norm.h"
#include "qdit/models/registry.h"
#include "qdit/nn/embeddings.h"

namespace qdit::models {

namespace {

constexpr const char* kWhere = "[FluxTransformer2DModel] ";
constexpr int64_t kTimeProjDim = 256;   // Timesteps(num_channels=256, flip_sin_to_cos=True, shift 0)
constexpr float kFinalNormEps = 1e-6f;  // norm_out: AdaLayerNormContinuous(eps=1e-6, no affine)
constexpr float kTimeScale = 1000.0f;   // the model receives sigma and guidance and scales both


Tensor as_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t.contiguous() : t.to(DType::F32); }

// One value per row: [B] or a single value broadcast, each times 1000 in f32.
std::vector<float> scaled_per_row(const std::vector<float>& v, int64_t batch) {
  std::vector<float> out(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i)
    out[static_cast<size_t>(i)] = v[v.size() == 1 ? 0 : static_cast<size_t>(i)] * kTimeScale;
  return out;
}

// Position ids as [rows, seq, n_axes] f32 with rows 1 or batch: [seq, n] is shared by every row
// (the 2-D form of later diffusers), [B, seq, n] holds one set per row (0.30.3's form).
Tensor batched_ids(const Tensor& ids, const char* name, int64_t batch, int64_t seq, int64_t n_axes) {
  const bool ok =
      ids.defined() &&
      ((ids.dim() == 2 && ids.size(0) == seq && ids.size(1) == n_axes) ||
       (ids.dim() == 3 && (ids.size(0) == 1 || ids.size(0) == batch) && ids.size(1) == seq && ids.size(2) == n_axes));
  QDIT_CHECK(ok, kWhere, name, ": expected [", seq, ", ", n_axes, "] or [", batch, ", ", seq, ", ", n_axes,
             "] (one id per axis of axes_dims_rope), got ", desc_or_undefined(ids));
  const Tensor f = as_f32(ids);
  return f.dim() == 2 ? f.unsqueeze(0) : f;
}

}  // namespace

FluxConfig FluxConfig::from_json(const io::JsonConfig& cfg) {
  const std::string where = "[" + cfg.path() + "]";
  FluxConfig c;
  // Defaults are FluxTransformer2DModel.__init__'s (diffusers 0.30.3).
  c.patch_size = cfg.get_or<int64_t>("patch_size", 1);
  c.in_channels = cfg.get_or<int64_t>("in_channels", 64);
  c.num_layers = cfg.get_or<int64_t>("num_layers", 19);
  c.num_single_layers = cfg.get_or<int64_t>("num_single_layers", 38);
  c.head_dim = cfg.get_or<int64_t>("attention_head_dim", 128);
  c.heads = cfg.get_or<int64_t>("num_attention_heads", 24);
  c.joint_attention_dim = cfg.get_or<int64_t>("joint_attention_dim", 4096);
  c.pooled_projection_dim = cfg.get_or<int64_t>("pooled_projection_dim", 768);
  c.guidance_embeds = cfg.get_or<bool>("guidance_embeds", false);
  c.axes_dims_rope = cfg.get_or<std::vector<int64_t>>("axes_dims_rope", {16, 56, 56});

  QDIT_CHECK(c.heads > 0 && c.head_dim > 0, where,
             " expected positive num_attention_heads and attention_head_dim, found ", c.heads, " and ", c.head_dim);
  QDIT_CHECK(c.in_channels > 0, where, " key 'in_channels' must be positive, found ", c.in_channels);
  QDIT_CHECK(c.patch_size > 0, where, " key 'patch_size' must be positive, found ", c.patch_size);
  QDIT_CHECK(c.num_layers >= 0, where, " key 'num_layers' must be >= 0, found ", c.num_layers);
  QDIT_CHECK(c.num_single_layers >= 0, where, " key 'num_single_layers' must be >= 0, found ", c.num_single_layers);
  QDIT_CHECK(c.joint_attention_dim > 0, where, " key 'joint_attention_dim' must be positive, found ",
             c.joint_attention_dim);
  QDIT_CHECK(c.pooled_projection_dim > 0, where, " key 'pooled_projection_dim' must be positive, found ",
             c.pooled_projection_dim);
  c.inner_dim = c.heads * c.head_dim;

  // The rotary table rotates every channel pair of a head: the axes must tile the head exactly.
  QDIT_CHECK(!c.axes_dims_rope.empty(), where, " key 'axes_dims_rope' must list at least one axis");
  for (int64_t d : c.axes_dims_rope)
    QDIT_CHECK(d > 0 && d % 2 == 0, where, " key 'axes_dims_rope': every axis dim must be positive and even, found ",
               d);
  const int64_t rope_dim = std::accumulate(c.axes_dims_rope.begin(), c.axes_dims_rope.end(), int64_t{0});
  QDIT_CHECK(rope_dim == c.head_dim, where, " key 'axes_dims_rope' sums to ", rope_dim,
             ", which must equal attention_head_dim (", c.head_dim, ")");

  // Later diffusers' out_channels (absent from 0.30.3): only the value that means 0.30.3 behaviour.
  if (cfg.has("out_channels")) {
    const int64_t oc = cfg.get<int64_t>("out_channels");
    QDIT_CHECK(oc == c.in_channels, where, " key 'out_channels' (", oc,
               ") is not supported unless equal to in_channels (", c.in_channels, ")");
  }
  return c;
}

FluxTransformer::FluxTransformer(const ModelSource& src) {
  QDIT_CHECK(src.config && src.weights, kWhere, "component ", src.component, " has no config or weights");
  cfg_ = FluxConfig::from_json(*src.config);
  const int64_t d = cfg_.inner_dim;
  const nn::ModuleContext& ctx = src.ctx;
  nn::WeightBinder root(src.weights, src.component);

  x_embedder_ = nn::Linear(root, "x_embedder", cfg_.in_channels, d, true, ctx);
  context_embedder_ = nn::Linear(root, "context_embedder", cfg_.joint_attention_dim, d, true, ctx);
  const nn::WeightBinder tte = root.sub("time_text_embed");
  time_1_ = nn::Linear(tte, "timestep_embedder.linear_1", kTimeProjDim, d, true, ctx);
  time_2_ = nn::Linear(tte, "timestep_embedder.linear_2", d, d, true, ctx);
  if (cfg_.guidance_embeds) {
    guide_1_ = nn::Linear(tte, "guidance_embedder.linear_1", kTimeProjDim, d, true, ctx);
    guide_2_ = nn::Linear(tte, "guidance_embedder.linear_2", d, d, true, ctx);
  }
  text_1_ = nn::Linear(tte, "text_embedder.linear_1", cfg_.pooled_projection_dim, d, true, ctx);
  text_2_ = nn::Linear(tte, "text_embedder.linear_2", d, d, true, ctx);

  blocks_ = nn::LazyBlocks<flux::DoubleBlock>(
      root, "transformer_blocks", cfg_.num_layers, ctx,
      [d, heads = cfg_.heads](const nn::WeightBinder& b, int64_t, const nn::ModuleContext& c) {
        return flux::DoubleBlock(b, d, heads, c);
      });
  single_blocks_ = nn::LazyBlocks<flux::SingleBlock>(
      root, "single_transformer_blocks", cfg_.num_single_layers, ctx,
      [d, heads = cfg_.heads](const nn::WeightBinder& b, int64_t, const nn::ModuleContext& c) {
        return flux::SingleBlock(b, d, heads, c);
      });

  norm_out_ = nn::Linear(root, "norm_out.linear", d, 2 * d, true, ctx);
  proj_out_ = nn::Linear(root, "proj_out", d, cfg_.out_features(), true, ctx);

  root.finish();  // throws listing every missing / wrong-shape tensor

  for (const nn::Linear* l : {&x_embedder_, &context_embedder_, &time_1_, &time_2_, &guide_1_, &guide_2_, &text_1_,
                              &text_2_, &norm_out_, &proj_out_})
    weight_bytes_ += l->weight_bytes();
  weight_bytes_ += blocks_.weight_bytes() + single_blocks_.weight_bytes();
}

Tensor FluxTransformer::forward(const DiTInputs& in) const {
  const int64_t d = cfg_.inner_dim, cin = cfg_.in_channels;
  const int64_t n_axes = static_cast<int64_t>(cfg_.axes_dims_rope.size());
  // ---- Input checks (every message names the input and the expected shape).
  QDIT_CHECK(in.latents.defined() && in.latents.dim() == 3 && in.latents.size(2) == cin, kWhere,
             "latents: expected packed [B, N, ", cin, "], got ", desc_or_undefined(in.latents));
  const int64_t batch = in.latents.size(0), n = in.latents.size(1);
  QDIT_CHECK(batch > 0 && n > 0, kWhere, "latents: empty tensor ", in.latents.desc());
  const Tensor& ehs = in.encoder_hidden_states;
  QDIT_CHECK(ehs.defined() && ehs.dim() == 3 && ehs.size(0) == batch && ehs.size(1) > 0 &&
                 ehs.size(2) == cfg_.joint_attention_dim,
             kWhere, "encoder_hidden_states: expected [", batch, ", L, ", cfg_.joint_attention_dim,
             "] with L > 0, got ", desc_or_undefined(ehs));
  const int64_t l = ehs.size(1);
  const Tensor& pooled = in.pooled_projections;
  QDIT_CHECK(
      pooled.defined() && pooled.dim() == 2 && pooled.size(0) == batch && pooled.size(1) == cfg_.pooled_projection_dim,
      kWhere, "pooled_projections: expected [", batch, ", ", cfg_.pooled_projection_dim, "], got ",
      desc_or_undefined(pooled));
  QDIT_CHECK(in.timestep.size() == static_cast<size_t>(batch) || in.timestep.size() == 1, kWhere, "timestep: expected ",
             batch, " values (or 1), got ", in.timestep.size());
  if (cfg_.guidance_embeds)
    QDIT_CHECK(in.guidance.size() == static_cast<size_t>(batch) || in.guidance.size() == 1, kWhere,
               "guidance: the model has guidance_embeds and needs ", batch, " values (or 1), got ", in.guidance.size());
  else
    QDIT_CHECK(in.guidance.empty(), kWhere, "guidance: the model has no guidance embedder (guidance_embeds false) ",
               "but got ", in.guidance.size(), " values");
  QDIT_CHECK(!in.encoder_attention_mask.defined(), kWhere,
             "encoder_attention_mask: Flux attends to every text token and takes no mask, got ",
             desc_or_undefined(in.encoder_attention_mask));
  const Tensor txt_ids = batched_ids(in.txt_ids, "txt_ids", batch, l, n_axes);
  const Tensor img_ids = batched_ids(in.img_ids, "img_ids", batch, n, n_axes);

  // ---- Rotary table over cat([txt_ids, img_ids]); a single row of ids is shared by the batch.
  const flux::Rope rope = [&] {
    if (txt_ids.size(0) == img_ids.size(0))
      return flux::Rope(kernels::concat({txt_ids, img_ids}, 1), cfg_.axes_dims_rope);
    std::vector<Tensor> rows;
    for (int64_t b = 0; b < batch; ++b) {
      const Tensor t = txt_ids.slice(0, txt_ids.size(0) == 1 ? 0 : b, txt_ids.size(0) == 1 ? 1 : b + 1);
      const Tensor i = img_ids.slice(0, img_ids.size(0) == 1 ? 0 : b, img_ids.size(0) == 1 ? 1 : b + 1);
      rows.push_back(kernels::concat({t, i}, 1));
    }
    return flux::Rope(kernels::concat(rows, 0), cfg_.axes_dims_rope);
  }();

  // ---- Conditioning: temb = (TimestepEmbedding(proj(1000 t)) [+ guidance embedding of 1000 g])
  //      + PixArtAlphaTextProjection(pooled), summed in diffusers' order.
  kernels::GemmOptions silu, acc;
  silu.activation = kernels::Activation::Silu;
  acc.accumulate = true;
  Tensor temb =
      time_2_(time_1_(nn::timestep_embedding(scaled_per_row(in.timestep, batch), kTimeProjDim, true, 0.0f), silu));
  if (cfg_.guidance_embeds)
    guide_2_.forward_into(
        guide_1_(nn::timestep_embedding(scaled_per_row(in.guidance, batch), kTimeProjDim, true, 0.0f), silu), temb,
        acc);
  text_2_.forward_into(text_1_(as_f32(pooled), silu), temb, acc);
  const Tensor silu_temb = kernels::activation(temb, kernels::Activation::Silu);  // every AdaLN's input

  Tensor x = x_embedder_(as_f32(in.latents));
  Tensor context = context_embedder_(as_f32(ehs));

  // ---- Double blocks (separate streams), then single blocks on cat([text, image]).
  blocks_.for_each([&](const flux::DoubleBlock& blk) { blk.forward(x, context, silu_temb, rope); });
  Tensor s = kernels::concat({context, x}, 1);
  context = Tensor();
  x = Tensor();
  single_blocks_.for_each([&](const flux::SingleBlock& blk) { blk.forward(s, silu_temb, rope); });
  x = s.slice(1, l, l + n).contiguous();
  s = Tensor();

  // ---- Final layer: AdaLayerNormContinuous splits (scale, shift); LN; modulate; proj_out.
  const Tensor mod = norm_out_(silu_temb).reshape({batch, 2, d});
  x = kernels::layer_norm_modulate(x, mod.select(1, 1), mod.select(1, 0), kFinalNormEps);
  return proj_out_(x);  // [B, N, patch_size^2 * in_channels]
}

void register_flux_models() {
  register_model("FluxTransformer2DModel",
                 [](const ModelSource& src) { return std::make_unique<FluxTransformer>(src); });
}

}  // namespace qdit::models
