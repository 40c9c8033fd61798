#include "qdit/models/vae/autoencoder_kl.h"

#include <memory>

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/models/registry.h"

namespace qdit::models {

namespace {

kernels::Activation parse_activation(const io::JsonConfig& cfg) {
  const std::string a = cfg.get_or("act_fn", "silu");
  // diffusers get_activation: silu/swish, relu, gelu (exact erf). mish has no kernel here.
  if (a == "silu" || a == "swish") return kernels::Activation::Silu;
  if (a == "relu") return kernels::Activation::Relu;
  if (a == "gelu") return kernels::Activation::GeluErf;
  fail("[", cfg.path(), "] key 'act_fn': expected silu, swish, relu or gelu, found '", a, "'");
}

// Bytes the decoder keeps resident: convolutions and norms are held as f32 copies.
size_t f32_bytes_under(const io::WeightSource& w, const std::vector<std::string>& prefixes,
                       const std::string& skip_prefix) {
  size_t total = 0;
  for (const std::string& name : w.names()) {
    if (name.rfind(skip_prefix, 0) == 0) continue;
    for (const std::string& p : prefixes) {
      if (name.rfind(p, 0) == 0) {
        total += static_cast<size_t>(w.find(name)->numel()) * sizeof(float);
        break;
      }
    }
  }
  return total;
}

}  // namespace

AutoencoderKLDecoder::AutoencoderKLDecoder(const ModelSource& src) {
  QDIT_CHECK(src.config && src.weights, "[AutoencoderKL] component ", src.component, " has no config or weights");
  const io::JsonConfig& cfg = *src.config;
  const std::string where = "[" + cfg.path() + "]";

  latent_channels_ = cfg.get_or<int64_t>("latent_channels", 4);
  out_channels_ = cfg.get_or<int64_t>("out_channels", 3);
  const auto block_out = cfg.get_or<std::vector<int64_t>>("block_out_channels", {64});
  const int64_t layers_per_block = cfg.get_or<int64_t>("layers_per_block", 1);
  const int64_t groups = cfg.get_or<int64_t>("norm_num_groups", 32);
  scaling_factor_ = cfg.get_or<float>("scaling_factor", 0.18215f);
  shift_factor_ = cfg.get_or<float>("shift_factor", 0.0f);  // null in SD/SDXL configs
  use_post_quant_conv_ = cfg.get_or<bool>("use_post_quant_conv", true);
  mid_attention_ = cfg.get_or<bool>("mid_block_add_attention", true);
  act_ = parse_activation(cfg);
  const auto up_types = cfg.get_or<std::vector<std::string>>(
      "up_block_types", std::vector<std::string>(block_out.size(), "UpDecoderBlock2D"));

  QDIT_CHECK(!block_out.empty(), where, " key 'block_out_channels' must not be empty");
  QDIT_CHECK(latent_channels_ > 0 && out_channels_ > 0 && layers_per_block >= 0 && groups > 0, where,
             " expected positive latent_channels/out_channels/norm_num_groups and layers_per_block >= 0");
  for (int64_t c : block_out)
    QDIT_CHECK(c > 0 && c % groups == 0, where, " block_out_channels entry ", c,
               " is not a positive multiple of norm_num_groups ", groups);
  QDIT_CHECK(up_types.size() == block_out.size(), where, " key 'up_block_types' has ", up_types.size(),
             " entries, expected one per block_out_channels (", block_out.size(), ")");
  for (size_t i = 0; i < up_types.size(); ++i)
    QDIT_CHECK(up_types[i] == "UpDecoderBlock2D", where, " key 'up_block_types[", i,
               "]': only UpDecoderBlock2D is supported, found '", up_types[i], "'");
  QDIT_CHECK(scaling_factor_ != 0.0f, where, " key 'scaling_factor' must not be 0");
  downscale_ = int64_t{1} << (block_out.size() - 1);

  // The VAE runs in f32 whatever the DiT's compute dtype (diffusers' force_upcast).
  nn::ModuleContext ctx = src.ctx;
  ctx.compute = DType::F32;
  const float eps = 1e-6f;

  nn::WeightBinder root(src.weights, src.component);
  if (use_post_quant_conv_)
    post_quant_conv_ = nn::Conv2d(root, "post_quant_conv", latent_channels_, latent_channels_, 1, ctx);
  nn::WeightBinder dec = root.sub("decoder");
  const int64_t top = block_out.back();
  conv_in_ = nn::Conv2d(dec, "conv_in", latent_channels_, top, 3, ctx);

  nn::WeightBinder mid = dec.sub("mid_block");
  mid_resnet0_ = vae::ResnetBlock2D(mid.sub("resnets", 0), top, top, groups, eps, act_, ctx);
  if (mid_attention_) mid_attention_block_ = vae::SpatialSelfAttention(mid.sub("attentions", 0), top, groups, eps, ctx);
  mid_resnet1_ = vae::ResnetBlock2D(mid.sub("resnets", 1), top, top, groups, eps, act_, ctx);

  int64_t prev = top;
  const int64_t nblocks = static_cast<int64_t>(block_out.size());
  up_blocks_.resize(block_out.size());
  for (int64_t i = 0; i < nblocks; ++i) {
    const int64_t out = block_out[nblocks - 1 - i];  // reversed(block_out_channels)
    nn::WeightBinder ub = dec.sub("up_blocks", i);
    UpBlock& blk = up_blocks_[i];
    for (int64_t j = 0; j < layers_per_block + 1; ++j)
      blk.resnets.emplace_back(ub.sub("resnets", j), j == 0 ? prev : out, out, groups, eps, act_, ctx);
    blk.has_upsample = i + 1 < nblocks;
    if (blk.has_upsample) blk.upsample = vae::Upsample2D(ub.sub("upsamplers", 0), out, ctx);
    prev = out;
  }
  norm_out_ = nn::GroupNorm(dec, "conv_norm_out", groups, block_out.front(), eps);
  conv_out_ = nn::Conv2d(dec, "conv_out", block_out.front(), out_channels_, 3, ctx);

  root.finish();  // throws listing every missing / wrong-shape tensor; encoder.* stays unused

  std::vector<std::string> prefixes{"decoder."};
  if (use_post_quant_conv_) prefixes.push_back("post_quant_conv.");
  weight_bytes_ = f32_bytes_under(*src.weights, prefixes, "decoder.mid_block.attentions.") +
                  (mid_attention_ ? mid_attention_block_.weight_bytes() + 2 * top * sizeof(float) : 0);
}

Tensor AutoencoderKLDecoder::decode(const Tensor& z_in) const {
  QDIT_CHECK(z_in.defined() && z_in.dim() == 4 && z_in.size(1) == latent_channels_, "[AutoencoderKL] decode expects [B, ",
             latent_channels_, ", h, w] latents, got ", z_in.defined() ? z_in.desc() : std::string("undefined"));
  QDIT_CHECK(z_in.size(0) > 0 && z_in.size(2) > 0 && z_in.size(3) > 0, "[AutoencoderKL] empty latents ", z_in.desc());
  Tensor z = z_in.dtype() == DType::F32 ? z_in.contiguous() : z_in.to(DType::F32);
  if (use_post_quant_conv_) z = post_quant_conv_(z);
  Tensor h = conv_in_(z);
  z = Tensor();
  h = mid_resnet0_(h);
  if (mid_attention_) h = mid_attention_block_(h);
  h = mid_resnet1_(h);
  for (const UpBlock& blk : up_blocks_) {
    for (const vae::ResnetBlock2D& r : blk.resnets) h = r(h);
    if (blk.has_upsample) h = blk.upsample(h);
  }
  h = norm_out_(h);
  kernels::activation_inplace(h, act_);
  return conv_out_(h);
}

void register_vae_models() {
  register_model("AutoencoderKL",
                 [](const ModelSource& src) { return std::make_unique<AutoencoderKLDecoder>(src); });
}

}  // namespace qdit::models
