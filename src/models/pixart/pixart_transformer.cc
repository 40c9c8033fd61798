#include "qdit/models/pixart/pixart_transformer.h"

#include <algorithm>

#include "qdit/core/error.h"
#include "qdit/models/dit_inputs.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/norm.h"
#include "qdit/models/registry.h"
#include "qdit/nn/embeddings.h"
#include "qdit/nn/layers.h"

namespace qdit::models {

namespace {

constexpr const char* kWhere = "[PixArtTransformer2DModel] ";
constexpr int64_t kTimeProjDim = 256;  // Timesteps(num_channels=256) in PixArtAlphaCombinedTimestepSizeEmbeddings
constexpr float kFinalNormEps = 1e-6f; // norm_out is LayerNorm(eps=1e-6) whatever norm_eps says
constexpr float kMaskBias = -10000.0f; // (1 - mask) * -10000.0, not -inf

// Text tokens up to the last one some batch item keeps (mask [B, L], 0 = pad); all L when an
// item keeps none (its softmax then spreads over every masked token).
int64_t kept_text_length(const Tensor& mask) {
  const int64_t batch = mask.size(0), seq = mask.size(1);
  int64_t kept = 0;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t last = -1;
    for (int64_t i = 0; i < seq; ++i)
      if (mask.item_f32(b * seq + i) != 0.0f) last = i;
    if (last < 0) return seq;
    kept = std::max(kept, last + 1);
  }
  return kept;
}

bool explicit_null(const io::JsonConfig& cfg, const std::string& key) {
  auto it = cfg.raw().find(key);
  return it != cfg.raw().end() && it->is_null();
}

}  // namespace

PixArtConfig PixArtConfig::from_json(const io::JsonConfig& cfg) {
  const std::string where = "[" + cfg.path() + "]";
  PixArtConfig c;
  // Defaults are PixArtTransformer2DModel.__init__'s (diffusers 0.30.3).
  c.heads = cfg.get_or<int64_t>("num_attention_heads", 16);
  c.head_dim = cfg.get_or<int64_t>("attention_head_dim", 72);
  c.in_channels = cfg.get_or<int64_t>("in_channels", 4);
  // A missing key takes the signature default 8; an explicit null means "same as in_channels".
  c.out_channels = explicit_null(cfg, "out_channels") ? c.in_channels : cfg.get_or<int64_t>("out_channels", 8);
  c.num_layers = cfg.get_or<int64_t>("num_layers", 28);
  c.sample_size = cfg.get_or<int64_t>("sample_size", 128);
  c.patch_size = cfg.get_or<int64_t>("patch_size", 2);
  c.caption_channels = cfg.get_or<int64_t>("caption_channels", 0);
  c.norm_eps = cfg.get_or<float>("norm_eps", 1e-6f);
  c.attention_bias = cfg.get_or<bool>("attention_bias", true);
  c.norm_elementwise_affine = cfg.get_or<bool>("norm_elementwise_affine", false);
  // upcast_attention only changes fp16 softmax precision; attention here accumulates in f32 anyway.
  (void)cfg.get_or<bool>("upcast_attention", false);

  QDIT_CHECK(c.heads > 0 && c.head_dim > 0, where,
             " expected positive num_attention_heads and attention_head_dim, found ",
             c.heads, " and ", c.head_dim);
  QDIT_CHECK(c.in_channels > 0 && c.out_channels > 0, where, " expected positive in_channels/out_channels, found ",
             c.in_channels, "/", c.out_channels);
  QDIT_CHECK(c.num_layers >= 0, where, " key 'num_layers' must be >= 0, found ", c.num_layers);
  QDIT_CHECK(c.patch_size > 0 && c.sample_size >= c.patch_size, where, " expected patch_size > 0 and sample_size >= ",
             "patch_size, found patch_size ", c.patch_size, " and sample_size ", c.sample_size);
  QDIT_CHECK(c.caption_channels >= 0, where, " key 'caption_channels' must be positive, found ", c.caption_channels);
  c.inner_dim = c.heads * c.head_dim;
  QDIT_CHECK(c.inner_dim % 4 == 0, where, " inner dim num_attention_heads*attention_head_dim = ", c.inner_dim,
             " must be divisible by 4 for the 2-D sin-cos position embedding");

  const std::string norm_type = cfg.get_or("norm_type", "ada_norm_single");
  QDIT_CHECK(norm_type == "ada_norm_single", where, " key 'norm_type': PixArtTransformer2DModel supports only ",
             "'ada_norm_single', found '", norm_type, "'");
  QDIT_CHECK(!explicit_null(cfg, "num_embeds_ada_norm"), where,
             " key 'num_embeds_ada_norm' is null; ada_norm_single requires a value (diffusers raises too)");
  const std::string attention_type = cfg.get_or("attention_type", "default");
  QDIT_CHECK(attention_type == "default", where, " key 'attention_type': only 'default' is supported, found '",
             attention_type, "'");
  QDIT_CHECK(!explicit_null(cfg, "cross_attention_dim"), where,
             " key 'cross_attention_dim' is null (blocks without cross-attention): not supported");
  c.cross_attention_dim = cfg.get_or<int64_t>("cross_attention_dim", 1152);
  QDIT_CHECK(c.cross_attention_dim > 0, where, " key 'cross_attention_dim' must be positive, found ",
             c.cross_attention_dim);
  // caption_projection outputs inner_dim tokens that attn2.to_k/to_v then read.
  QDIT_CHECK(c.caption_channels == 0 || c.cross_attention_dim == c.inner_dim, where, " key 'cross_attention_dim' (",
             c.cross_attention_dim, ") must equal num_attention_heads*attention_head_dim (", c.inner_dim,
             ") when caption_channels is set: the caption projection outputs inner_dim features");

  const std::string act = cfg.get_or("activation_fn", "gelu-approximate");
  if (act == "gelu-approximate") {
    c.ff_act = kernels::Activation::GeluTanh;
  } else if (act == "gelu") {
    c.ff_act = kernels::Activation::GeluErf;
  } else {
    fail(where, " key 'activation_fn': expected 'gelu-approximate' or 'gelu', found '", act, "'");
  }

  c.interpolation_scale = cfg.has("interpolation_scale")
                              ? cfg.get<float>("interpolation_scale")
                              : static_cast<float>(std::max<int64_t>(c.sample_size / 64, 1));
  QDIT_CHECK(c.interpolation_scale > 0.0f, where, " key 'interpolation_scale' must be positive, found ",
             c.interpolation_scale);
  c.use_additional_conditions = cfg.has("use_additional_conditions") ? cfg.get<bool>("use_additional_conditions")
                                                                     : c.sample_size == 128;
  QDIT_CHECK(!c.use_additional_conditions || c.inner_dim % 3 == 0, where,
             " use_additional_conditions needs the inner dim (", c.inner_dim,
             ") divisible by 3 (resolution and aspect-ratio embeddings are inner_dim/3 wide each)");
  return c;
}

namespace pixart {

Mlp2::Mlp2(const nn::WeightBinder& parent, const std::string& name, int64_t in, int64_t hidden, kernels::Activation a,
           const nn::ModuleContext& ctx)
    : act(a) {
  const nn::WeightBinder b = parent.sub(name);
  fc1 = nn::Linear(b, "linear_1", in, hidden, true, ctx);
  fc2 = nn::Linear(b, "linear_2", hidden, hidden, true, ctx);
}

Tensor Mlp2::operator()(const Tensor& x) const {
  kernels::GemmOptions opt;
  opt.activation = act;
  return fc2(fc1(x, opt));
}

}  // namespace pixart

PixArtTransformer::PixArtTransformer(const ModelSource& src) {
  QDIT_CHECK(src.config && src.weights, kWhere, "component ", src.component, " has no config or weights");
  cfg_ = PixArtConfig::from_json(*src.config);
  const int64_t d = cfg_.inner_dim, p = cfg_.patch_size;
  const nn::ModuleContext& ctx = src.ctx;
  nn::WeightBinder root(src.weights, src.component);

  // pos_embed.proj is a Conv2d with kernel = stride = patch: the same as a Linear over flattened
  // (c, p, q) patches, so its [D, C, p, p] weight is used as a [D, C*p*p] GEMM weight.
  {
    const nn::WeightBinder pe = root.sub("pos_embed.proj");
    const Tensor w = pe.get("weight", {d, cfg_.in_channels, p, p});
    const Tensor b = pe.get("bias", {d});
    if (w.defined() && b.defined())
      // A Conv2d, not a Linear: the float factory, since quantization covers Linear layers only.
      patch_proj_ = nn::LinearFactory().make(root.path("pos_embed.proj"),
                                               w.contiguous().reshape({d, cfg_.in_channels * p * p}), b, ctx.compute);
  }

  const nn::WeightBinder ada = root.sub("adaln_single");
  const nn::WeightBinder emb = ada.sub("emb");
  timestep_embedder_ = pixart::Mlp2(emb, "timestep_embedder", kTimeProjDim, d, kernels::Activation::Silu, ctx);
  if (cfg_.use_additional_conditions) {
    resolution_embedder_ =
        pixart::Mlp2(emb, "resolution_embedder", kTimeProjDim, d / 3, kernels::Activation::Silu, ctx);
    aspect_ratio_embedder_ =
        pixart::Mlp2(emb, "aspect_ratio_embedder", kTimeProjDim, d / 3, kernels::Activation::Silu, ctx);
  }
  adaln_linear_ = nn::Linear(ada, "linear", d, 6 * d, true, ctx);
  if (cfg_.caption_channels > 0) {
    // PixArtAlphaTextProjection(caption_channels, inner_dim), act gelu_tanh.
    caption_projection_ =
        pixart::Mlp2(root, "caption_projection", cfg_.caption_channels, d, kernels::Activation::GeluTanh, ctx);
  }

  pixart::BlockConfig bc;
  bc.dim = d;
  bc.heads = cfg_.heads;
  bc.cross_dim = cfg_.cross_attention_dim;
  bc.ff_inner = 4 * d;  // FeedForward mult=4, no ff_inner_dim in this model
  bc.eps = cfg_.norm_eps;
  bc.attention_bias = cfg_.attention_bias;
  bc.norm_affine = cfg_.norm_elementwise_affine;
  bc.ff_act = cfg_.ff_act;
  blocks_ = nn::LazyBlocks<pixart::PixArtBlock>(
      root, "transformer_blocks", cfg_.num_layers, ctx,
      [bc](const nn::WeightBinder& b, int64_t, const nn::ModuleContext& c) { return pixart::PixArtBlock(b, bc, c); });

  final_table_ = nn::to_f32_param(root.get("scale_shift_table", {2, d}));
  proj_out_ = nn::Linear(root, "proj_out", d, p * p * cfg_.out_channels, true, ctx);

  root.finish();  // throws listing every missing / wrong-shape tensor

  weight_bytes_ = (patch_proj_ ? patch_proj_->weight_bytes() : 0) + timestep_embedder_.weight_bytes() +
                  resolution_embedder_.weight_bytes() + aspect_ratio_embedder_.weight_bytes() +
                  adaln_linear_.weight_bytes() + caption_projection_.weight_bytes() + final_table_.nbytes() +
                  proj_out_.weight_bytes();
  weight_bytes_ += blocks_.weight_bytes();
}

Tensor PixArtTransformer::pos_embed(int64_t grid_h, int64_t grid_w) const {
  std::lock_guard<std::mutex> lock(pos_mu_);
  if (grid_h != pos_h_ || grid_w != pos_w_) {
    // PatchEmbed: base_size = sample_size // patch_size; the table is rebuilt for the actual grid.
    const float base = static_cast<float>(cfg_.sample_size / cfg_.patch_size);
    pos_cache_ = nn::sincos_2d_pos_embed(cfg_.inner_dim, grid_h, grid_w, base, cfg_.interpolation_scale);
    pos_h_ = grid_h;
    pos_w_ = grid_w;
  }
  return pos_cache_;
}

Tensor PixArtTransformer::embed_timestep(const std::vector<float>& t_in, int64_t batch,
                                         const PixArtSizeConditions* sizes, Tensor& t6) const {
  std::vector<float> t = t_in;
  if (t.size() == 1 && batch > 1) t.assign(static_cast<size_t>(batch), t_in[0]);
  Tensor temb = timestep_embedder_(nn::timestep_embedding(t, kTimeProjDim, true, 0.0f));  // [B, D]
  if (cfg_.use_additional_conditions) {
    // conditioning = temb + cat([res_emb(h), res_emb(w), ar_emb(h / w)], dim=1)
    const int64_t third = cfg_.inner_dim / 3;
    const Tensor res = resolution_embedder_(nn::timestep_embedding(sizes->resolution, kTimeProjDim, true, 0.0f));
    const Tensor ar = aspect_ratio_embedder_(nn::timestep_embedding(sizes->aspect_ratio, kTimeProjDim, true, 0.0f));
    const float* rp = res.data<float>();  // [2B, D/3] == [B, 2D/3]
    const float* ap = ar.data<float>();   // [B, D/3]
    float* tp = temb.data<float>();
    for (int64_t b = 0; b < batch; ++b) {
      float* row = tp + b * cfg_.inner_dim;
      for (int64_t j = 0; j < 2 * third; ++j) row[j] += rp[b * 2 * third + j];
      for (int64_t j = 0; j < third; ++j) row[2 * third + j] += ap[b * third + j];
    }
  }
  t6 = adaln_linear_(kernels::activation(temb, kernels::Activation::Silu));  // [B, 6D]
  return temb;
}

Tensor PixArtTransformer::forward(const DiTInputs& in) const { return forward(in, nullptr); }

Tensor PixArtTransformer::forward(const DiTInputs& in, const PixArtSizeConditions* sizes) const {
  const int64_t d = cfg_.inner_dim, p = cfg_.patch_size, cin = cfg_.in_channels, cout = cfg_.out_channels;
  // ---- Input checks (every message names the input and the expected shape).
  const PatchGrid grid = check_patched_latents(in.latents, cin, p, kWhere);
  const int64_t batch = grid.batch, height = grid.height, width = grid.width;
  const int64_t ctx_dim = cfg_.caption_channels > 0 ? cfg_.caption_channels : cfg_.cross_attention_dim;
  const Tensor& ehs = in.encoder_hidden_states;
  QDIT_CHECK(ehs.defined() && ehs.dim() == 3 && ehs.size(0) == batch && ehs.size(1) > 0 && ehs.size(2) == ctx_dim,
             kWhere, "encoder_hidden_states: expected [", batch, ", L, ", ctx_dim, "] with L > 0, got ",
             ehs.defined() ? ehs.desc() : std::string("undefined"));
  const int64_t seq = ehs.size(1);
  const Tensor& mask = in.encoder_attention_mask;
  QDIT_CHECK(!mask.defined() || (mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == seq), kWhere,
             "encoder_attention_mask: expected [", batch, ", ", seq, "] (1 keep, 0 pad) or none, got ",
             mask.defined() ? mask.desc() : std::string(""));
  QDIT_CHECK(in.timestep.size() == static_cast<size_t>(batch) || in.timestep.size() == 1, kWhere, "timestep: expected ",
             batch, " values (or 1), got ", in.timestep.size());
  if (cfg_.use_additional_conditions) {
    QDIT_CHECK(sizes != nullptr, kWhere,
               "this model has use_additional_conditions=true (PixArt-Alpha, sample_size 128):",
               " pass PixArtSizeConditions (resolution = (height, width) in pixels, aspect_ratio = height/width) ",
               "through forward(in, sizes)");
    QDIT_CHECK(sizes->resolution.size() == static_cast<size_t>(2 * batch) &&
                   sizes->aspect_ratio.size() == static_cast<size_t>(batch),
               kWhere, "size conditions: expected ", 2 * batch, " resolution and ", batch,
               " aspect_ratio values, got ", sizes->resolution.size(), " and ", sizes->aspect_ratio.size());
  }

  // ---- Patch embedding: [B, C, H, W] -> [B, h, w, C, p, q] -> GEMM -> [B, h*w, D], + sin-cos table.
  const int64_t gh = height / p, gw = width / p, n = gh * gw;
  const Tensor lat = in.latents.dtype() == DType::F32 ? in.latents : in.latents.to(DType::F32);
  Tensor patches = lat.contiguous().reshape({batch, cin, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5}).contiguous();
  Tensor x = patch_proj_->forward(patches.reshape({batch, n, cin * p * p}));
  patches = Tensor();
  kernels::add_inplace(x, pos_embed(gh, gw));

  // ---- Conditioning.
  Tensor t6;
  const Tensor temb = embed_timestep(in.timestep, batch, sizes, t6);
  // Text tokens past every batch item's last kept one only ever get attention weight exactly 0
  // (their -10000 bias underflows exp, in diffusers as here) as long as each item keeps one: they
  // are cut before the caption projection, so the k/v projections and the cross-attention run on
  // the kept length (a short prompt is padded to 300 tokens). No bias when nothing is masked in it.
  const int64_t kept = mask.defined() ? kept_text_length(mask) : seq;
  bool masked_inside = false;
  for (int64_t b = 0; mask.defined() && b < batch; ++b)
    for (int64_t i = 0; i < kept; ++i) masked_inside |= mask.item_f32(b * seq + i) != 1.0f;
  Tensor context = ehs.slice(1, 0, kept);
  context = context.dtype() == DType::F32 ? context.contiguous() : context.to(DType::F32);
  if (caption_projection_.fc1.defined()) context = caption_projection_(context);  // [B, L, D]
  Tensor mask_bias;
  if (masked_inside) {
    mask_bias = Tensor::empty({batch, 1, 1, kept}, DType::F32);
    float* mb = mask_bias.data<float>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < kept; ++i) mb[b * kept + i] = (1.0f - mask.item_f32(b * seq + i)) * kMaskBias;
  }

  // ---- Blocks.
  const Tensor* bias = mask_bias.defined() ? &mask_bias : nullptr;
  blocks_.for_each([&](const pixart::PixArtBlock& blk) { blk.forward(x, t6, context, bias); });

  // ---- Final layer: (table[2, D] + embedded_timestep) -> shift, scale; LN; modulate; proj_out.
  Tensor mod = Tensor::empty({batch, 2, d}, DType::F32);
  {
    const float* tab = final_table_.data<float>();
    const float* te = temb.data<float>();
    float* m = mod.data<float>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < d; ++j) m[(b * 2 + i) * d + j] = tab[i * d + j] + te[b * d + j];
  }
  x = kernels::layer_norm_modulate(x, mod.select(1, 0), mod.select(1, 1), kFinalNormEps);
  Tensor y = proj_out_(x);  // [B, N, p*q*C_out]
  x = Tensor();

  // ---- Unpatchify: [B, h, w, p, q, c] -> [B, c, h, p, w, q] -> [B, c, H, W].
  return y.reshape({batch, gh, gw, p, p, cout}).permute({0, 5, 1, 3, 2, 4}).contiguous().reshape(
      {batch, cout, height, width});
}

void register_pixart_models() {
  register_model("PixArtTransformer2DModel",
                 [](const ModelSource& src) { return std::make_unique<PixArtTransformer>(src); });
}

}  // namespace qdit::models
