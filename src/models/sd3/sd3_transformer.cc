#include "qdit/models/sd3/sd3_transformer.h"

#include "qdit/core/error.h"
#include "qdit/models/dit_inputs.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/norm.h"
#include "qdit/models/registry.h"
#include "qdit/nn/embeddings.h"
#include "qdit/nn/layers.h"

namespace qdit::models {

namespace {

constexpr const char* kWhere = "[SD3Transformer2DModel] ";
constexpr int64_t kTimeProjDim = 256;   // Timesteps(num_channels=256, flip_sin_to_cos=True, shift 0)
constexpr float kFinalNormEps = 1e-6f;  // norm_out: AdaLayerNormContinuous(eps=1e-6, no affine)

bool explicit_null(const io::JsonConfig& cfg, const std::string& key) {
  auto it = cfg.raw().find(key);
  return it != cfg.raw().end() && it->is_null();
}


}  // namespace

SD3Config SD3Config::from_json(const io::JsonConfig& cfg) {
  const std::string where = "[" + cfg.path() + "]";
  SD3Config c;
  // Defaults are SD3Transformer2DModel.__init__'s (diffusers 0.30.3).
  c.sample_size = cfg.get_or<int64_t>("sample_size", 128);
  c.patch_size = cfg.get_or<int64_t>("patch_size", 2);
  c.in_channels = cfg.get_or<int64_t>("in_channels", 16);
  c.num_layers = cfg.get_or<int64_t>("num_layers", 18);
  c.head_dim = cfg.get_or<int64_t>("attention_head_dim", 64);
  c.heads = cfg.get_or<int64_t>("num_attention_heads", 18);
  c.joint_attention_dim = cfg.get_or<int64_t>("joint_attention_dim", 4096);
  c.caption_projection_dim = cfg.get_or<int64_t>("caption_projection_dim", 1152);
  c.pooled_projection_dim = cfg.get_or<int64_t>("pooled_projection_dim", 2048);
  // out_channels: a missing key takes the default 16, an explicit null means in_channels.
  c.out_channels = explicit_null(cfg, "out_channels") ? c.in_channels : cfg.get_or<int64_t>("out_channels", 16);
  c.pos_embed_max_size = explicit_null(cfg, "pos_embed_max_size") ? 0 : cfg.get_or<int64_t>("pos_embed_max_size", 96);

  QDIT_CHECK(c.heads > 0 && c.head_dim > 0, where,
             " expected positive num_attention_heads and attention_head_dim, found ", c.heads, " and ", c.head_dim);
  QDIT_CHECK(c.in_channels > 0 && c.out_channels > 0, where, " expected positive in_channels/out_channels, found ",
             c.in_channels, "/", c.out_channels);
  QDIT_CHECK(c.num_layers >= 0, where, " key 'num_layers' must be >= 0, found ", c.num_layers);
  QDIT_CHECK(c.patch_size > 0 && c.sample_size >= c.patch_size, where, " expected patch_size > 0 and sample_size >= ",
             "patch_size, found patch_size ", c.patch_size, " and sample_size ", c.sample_size);
  QDIT_CHECK(c.joint_attention_dim > 0, where, " key 'joint_attention_dim' must be positive, found ",
             c.joint_attention_dim);
  QDIT_CHECK(c.pooled_projection_dim > 0, where, " key 'pooled_projection_dim' must be positive, found ",
             c.pooled_projection_dim);
  QDIT_CHECK(c.pos_embed_max_size >= 0, where, " key 'pos_embed_max_size' must be positive, found ",
             c.pos_embed_max_size);
  c.inner_dim = c.heads * c.head_dim;
  QDIT_CHECK(c.inner_dim % 4 == 0, where, " inner dim num_attention_heads*attention_head_dim = ", c.inner_dim,
             " must be divisible by 4 for the 2-D sin-cos position embedding");
  // The context embedder's output feeds blocks of width inner_dim.
  QDIT_CHECK(c.caption_projection_dim == c.inner_dim, where, " key 'caption_projection_dim' (",
             c.caption_projection_dim, ") must equal num_attention_heads*attention_head_dim (", c.inner_dim, ")");

  // SD3.5 keys (diffusers >= 0.31): accepted only with the values that mean "SD3 behaviour".
  QDIT_CHECK(!cfg.has("qk_norm"), where, " key 'qk_norm' (SD3.5 q/k normalisation) is not supported, found ",
             cfg.has("qk_norm") ? cfg.raw().at("qk_norm").dump() : std::string());
  if (cfg.has("dual_attention_layers")) {
    const nlohmann::json& dual = cfg.raw().at("dual_attention_layers");
    QDIT_CHECK(dual.is_array() && dual.empty(), where,
               " key 'dual_attention_layers' (SD3.5 MMDiT-X) is not supported, found ", dual.dump());
  }
  return c;
}

SD3Transformer::SD3Transformer(const ModelSource& src) {
  QDIT_CHECK(src.config && src.weights, kWhere, "component ", src.component, " has no config or weights");
  cfg_ = SD3Config::from_json(*src.config);
  const int64_t d = cfg_.inner_dim, p = cfg_.patch_size, mx = cfg_.pos_embed_max_size;
  const nn::ModuleContext& ctx = src.ctx;
  nn::WeightBinder root(src.weights, src.component);

  // pos_embed.proj is a Conv2d with kernel = stride = patch: a Linear over flattened (c, p, q)
  // patches, so its [D, C, p, p] weight is used as a [D, C*p*p] GEMM weight.
  {
    const nn::WeightBinder pe = root.sub("pos_embed");
    const Tensor w = pe.get("proj.weight", {d, cfg_.in_channels, p, p});
    const Tensor b = pe.get("proj.bias", {d});
    if (w.defined() && b.defined())
      // A Conv2d, not a Linear: the float factory, since quantization covers Linear layers only.
      patch_proj_ = nn::LinearFactory().make(root.path("pos_embed.proj"),
                                               w.contiguous().reshape({d, cfg_.in_channels * p * p}), b, ctx.compute);
    if (mx > 0) {
      // With pos_embed_max_size the table is a persistent buffer: diffusers loads the checkpoint's
      // copy. Without it in the checkpoint, it is what PatchEmbed.__init__ computes (base_size =
      // sample_size // patch, interpolation_scale 1).
      const Tensor t = pe.get_optional("pos_embed", {1, mx * mx, d});
      pos_table_ = t.defined() ? nn::to_f32_param(t).reshape({mx * mx, d})
                               : nn::sincos_2d_pos_embed(d, mx, mx, static_cast<float>(cfg_.sample_size / p), 1.0f);
    }
  }

  const nn::WeightBinder tte = root.sub("time_text_embed");
  time_1_ = nn::Linear(tte, "timestep_embedder.linear_1", kTimeProjDim, d, true, ctx);
  time_2_ = nn::Linear(tte, "timestep_embedder.linear_2", d, d, true, ctx);
  text_1_ = nn::Linear(tte, "text_embedder.linear_1", cfg_.pooled_projection_dim, d, true, ctx);
  text_2_ = nn::Linear(tte, "text_embedder.linear_2", d, d, true, ctx);
  context_embedder_ = nn::Linear(root, "context_embedder", cfg_.joint_attention_dim, cfg_.caption_projection_dim,
                                 true, ctx);

  blocks_ = nn::LazyBlocks<sd3::JointBlock>(
      root, "transformer_blocks", cfg_.num_layers, ctx,
      [d, heads = cfg_.heads, last = cfg_.num_layers - 1](const nn::WeightBinder& b, int64_t i,
                                                          const nn::ModuleContext& c) {
        return sd3::JointBlock(b, d, heads, i == last, c);
      });

  norm_out_ = nn::Linear(root, "norm_out.linear", d, 2 * d, true, ctx);
  proj_out_ = nn::Linear(root, "proj_out", d, p * p * cfg_.out_channels, true, ctx);

  root.finish();  // throws listing every missing / wrong-shape tensor

  weight_bytes_ = (patch_proj_ ? patch_proj_->weight_bytes() : 0) + (pos_table_.defined() ? pos_table_.nbytes() : 0);
  for (const nn::Linear* l : {&time_1_, &time_2_, &text_1_, &text_2_, &context_embedder_, &norm_out_, &proj_out_})
    weight_bytes_ += l->weight_bytes();
  weight_bytes_ += blocks_.weight_bytes();
}

Tensor SD3Transformer::pos_embed(int64_t grid_h, int64_t grid_w) const {
  std::lock_guard<std::mutex> lock(pos_mu_);
  if (grid_h != pos_h_ || grid_w != pos_w_) {
    const int64_t d = cfg_.inner_dim, mx = cfg_.pos_embed_max_size;
    if (mx > 0) {
      // PatchEmbed.cropped_pos_embed: center crop of the [M, M, D] table.
      const int64_t top = (mx - grid_h) / 2, left = (mx - grid_w) / 2;
      pos_cache_ = pos_table_.reshape({mx, mx, d})
                       .slice(0, top, top + grid_h)
                       .slice(1, left, left + grid_w)
                       .contiguous()
                       .reshape({grid_h * grid_w, d});
    } else {
      // No max size: PatchEmbed recomputes the table for the actual grid.
      pos_cache_ = nn::sincos_2d_pos_embed(d, grid_h, grid_w, static_cast<float>(cfg_.sample_size / cfg_.patch_size),
                                           1.0f);
    }
    pos_h_ = grid_h;
    pos_w_ = grid_w;
  }
  return pos_cache_;
}

Tensor SD3Transformer::forward(const DiTInputs& in) const {
  const int64_t d = cfg_.inner_dim, p = cfg_.patch_size, cin = cfg_.in_channels, cout = cfg_.out_channels;
  // ---- Input checks (every message names the input and the expected shape).
  const PatchGrid grid = check_patched_latents(in.latents, cin, p, kWhere);
  const int64_t batch = grid.batch, height = grid.height, width = grid.width;
  const int64_t gh = height / p, gw = width / p, n = gh * gw;
  const int64_t mx = cfg_.pos_embed_max_size;
  QDIT_CHECK(mx == 0 || (gh <= mx && gw <= mx), kWhere, "latents: patch grid ", gh, "x", gw,
             " exceeds pos_embed_max_size ", mx, " (latents ", in.latents.desc(), ")");
  const Tensor& ehs = in.encoder_hidden_states;
  QDIT_CHECK(ehs.defined() && ehs.dim() == 3 && ehs.size(0) == batch && ehs.size(1) > 0 &&
                 ehs.size(2) == cfg_.joint_attention_dim,
             kWhere, "encoder_hidden_states: expected [", batch, ", L, ", cfg_.joint_attention_dim, "] with L > 0, got ",
             desc_or_undefined(ehs));
  const Tensor& pooled = in.pooled_projections;
  QDIT_CHECK(pooled.defined() && pooled.dim() == 2 && pooled.size(0) == batch &&
                 pooled.size(1) == cfg_.pooled_projection_dim,
             kWhere, "pooled_projections: expected [", batch, ", ", cfg_.pooled_projection_dim, "], got ",
             desc_or_undefined(pooled));
  QDIT_CHECK(in.timestep.size() == static_cast<size_t>(batch) || in.timestep.size() == 1, kWhere,
             "timestep: expected ", batch, " values (or 1), got ", in.timestep.size());
  QDIT_CHECK(!in.encoder_attention_mask.defined(), kWhere,
             "encoder_attention_mask: SD3 attends to every text token and takes no mask, got ",
             desc_or_undefined(in.encoder_attention_mask));

  // ---- Patch embedding: [B, C, H, W] -> [B, h, w, C, p, q] -> GEMM -> [B, h*w, D], + cropped table.
  const Tensor lat = in.latents.dtype() == DType::F32 ? in.latents : in.latents.to(DType::F32);
  Tensor patches = lat.contiguous().reshape({batch, cin, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5}).contiguous();
  Tensor x = patch_proj_->forward(patches.reshape({batch, n, cin * p * p}));
  patches = Tensor();
  kernels::add_inplace(x, pos_embed(gh, gw));

  // ---- Conditioning: temb = TimestepEmbedding(proj(t)) + PixArtAlphaTextProjection(pooled).
  std::vector<float> t = in.timestep;
  if (t.size() == 1 && batch > 1) t.assign(static_cast<size_t>(batch), in.timestep[0]);
  kernels::GemmOptions silu;
  silu.activation = kernels::Activation::Silu;
  Tensor temb = time_2_(time_1_(nn::timestep_embedding(t, kTimeProjDim, true, 0.0f), silu));
  {
    const Tensor pf = pooled.dtype() == DType::F32 ? pooled.contiguous() : pooled.to(DType::F32);
    kernels::GemmOptions acc;
    acc.accumulate = true;
    text_2_.forward_into(text_1_(pf, silu), temb, acc);
  }
  const Tensor silu_temb = kernels::activation(temb, kernels::Activation::Silu);  // every AdaLN's input
  Tensor context = context_embedder_(ehs.dtype() == DType::F32 ? ehs.contiguous() : ehs.to(DType::F32));

  // ---- Blocks.
  blocks_.for_each([&](const sd3::JointBlock& blk) { blk.forward(x, context, silu_temb); });
  context = Tensor();

  // ---- Final layer: AdaLayerNormContinuous splits (scale, shift); LN; modulate; proj_out.
  const Tensor mod = norm_out_(silu_temb).reshape({batch, 2, d});
  x = kernels::layer_norm_modulate(x, mod.select(1, 1), mod.select(1, 0), kFinalNormEps);
  Tensor y = proj_out_(x);  // [B, N, p*q*C_out]
  x = Tensor();

  // ---- Unpatchify: "nhwpqc->nchpwq".
  return y.reshape({batch, gh, gw, p, p, cout}).permute({0, 5, 1, 3, 2, 4}).contiguous().reshape(
      {batch, cout, height, width});
}

void register_sd3_models() {
  register_model("SD3Transformer2DModel", [](const ModelSource& src) { return std::make_unique<SD3Transformer>(src); });
}

}  // namespace qdit::models
