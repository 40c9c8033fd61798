#include "qdit/models/t5/t5_encoder.h"

#include <cstring>
#include <memory>

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/models/registry.h"
#include "qdit/models/t5/t5_position_bias.h"
#include "qdit/nn/attention.h"

namespace qdit::models {

namespace {

// transformers ACT2FN names T5 configs use.
kernels::Activation parse_dense_act(const std::string& a, const std::string& where) {
  if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") return kernels::Activation::GeluTanh;
  if (a == "gelu") return kernels::Activation::GeluErf;
  if (a == "silu" || a == "swish") return kernels::Activation::Silu;
  if (a == "relu") return kernels::Activation::Relu;
  fail(where, ": expected gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, silu, swish or relu, found '", a, "'");
}

}  // namespace

T5Config T5Config::from_json(const io::JsonConfig& cfg, bool umt5) {
  T5Config c;
  c.umt5 = umt5;
  const std::string where = "[" + cfg.path() + "]";
  // T5Config / UMT5Config constructor defaults.
  c.vocab_size = cfg.get_or<int64_t>("vocab_size", umt5 ? 250112 : 32128);
  c.d_model = cfg.get_or<int64_t>("d_model", 512);
  c.d_kv = cfg.get_or<int64_t>("d_kv", 64);
  c.d_ff = cfg.get_or<int64_t>("d_ff", umt5 ? 1024 : 2048);
  c.num_layers = cfg.get_or<int64_t>("num_layers", umt5 ? 8 : 6);
  c.num_heads = cfg.get_or<int64_t>("num_heads", umt5 ? 6 : 8);
  c.num_buckets = cfg.get_or<int64_t>("relative_attention_num_buckets", 32);
  c.max_distance = cfg.get_or<int64_t>("relative_attention_max_distance", 128);
  c.eps = cfg.get_or<float>("layer_norm_epsilon", 1e-6f);

  const std::string proj = cfg.get_or("feed_forward_proj", umt5 ? "gated-gelu" : "relu");
  const size_t dash = proj.find('-');
  std::string act = proj;
  if (dash != std::string::npos) {
    QDIT_CHECK(proj.substr(0, dash) == "gated" && proj.find('-', dash + 1) == std::string::npos, where,
               " key 'feed_forward_proj': expected '{ACT_FN}' or 'gated-{ACT_FN}', found '", proj, "'");
    act = proj.substr(dash + 1);
    c.gated = true;
  }
  if (proj == "gated-gelu") act = "gelu_new";  // transformers' backwards-compatibility rule
  // save_pretrained also writes the derived attributes; when present they win, as in transformers.
  c.gated = cfg.get_or<bool>("is_gated_act", c.gated);
  act = cfg.get_or<std::string>("dense_act_fn", act);
  c.act = parse_dense_act(act, where + (cfg.has("dense_act_fn") ? " key 'dense_act_fn'" : " key 'feed_forward_proj'"));

  QDIT_CHECK(c.vocab_size > 0 && c.d_model > 0 && c.d_kv > 0 && c.d_ff > 0 && c.num_layers > 0 && c.num_heads > 0,
             where, " expected positive vocab_size, d_model, d_kv, d_ff, num_layers and num_heads, found ",
             c.vocab_size, ", ", c.d_model, ", ", c.d_kv, ", ", c.d_ff, ", ", c.num_layers, ", ", c.num_heads);
  QDIT_CHECK(c.num_buckets >= 4 && c.max_distance > c.num_buckets / 4, where,
             " keys 'relative_attention_num_buckets' / 'relative_attention_max_distance': expected >= 4 buckets and "
             "max_distance > num_buckets / 4, found ", c.num_buckets, " / ", c.max_distance);
  QDIT_CHECK(c.eps > 0.0f, where, " key 'layer_norm_epsilon' must be positive, found ", c.eps);
  return c;
}

T5Encoder::T5Encoder(const ModelSource& src, bool umt5) {
  const char* name = umt5 ? "UMT5EncoderModel" : "T5EncoderModel";
  QDIT_CHECK(src.config && src.weights, "[", name, "] component ", src.component, " has no config or weights");
  cfg_ = T5Config::from_json(*src.config, umt5);
  compute_ = src.ctx.compute;
  const int64_t d = cfg_.d_model;

  nn::WeightBinder root(src.weights, src.component);
  // transformers ties encoder.embed_tokens to shared: a checkpoint may hold either or both.
  // Binding both marks the tied copy used (and shape-checked); shared.weight is the one kept.
  const Shape emb_shape{cfg_.vocab_size, d};
  const bool has_shared = root.has("shared.weight"), has_embed = root.has("encoder.embed_tokens.weight");
  if (has_shared || !has_embed) embed_tokens_ = root.get("shared.weight", emb_shape);
  if (has_embed) {
    Tensor t = root.get("encoder.embed_tokens.weight", emb_shape);
    if (!has_shared) embed_tokens_ = t;
  }
  if (embed_tokens_.defined()) {
    const DType et = embed_tokens_.dtype();
    QDIT_CHECK(et == DType::F32 || et == DType::F16 || et == DType::BF16, "[", name, "] ",
               root.path(has_shared ? "shared.weight" : "encoder.embed_tokens.weight"),
               ": expected f32, f16 or bf16 embeddings, found ", dtype_name(et));
    embed_tokens_ = embed_tokens_.contiguous();
    weight_bytes_ += embed_tokens_.nbytes();
  }

  nn::WeightBinder enc = root.sub("encoder");
  const T5Config cfg = cfg_;
  blocks_ = nn::LazyBlocks<Block>(enc, "block", cfg_.num_layers, src.ctx,
                                  [cfg](const nn::WeightBinder& b, int64_t i, const nn::ModuleContext& c) {
                                    return build_block(cfg, b, i, c);
                                  });
  weight_bytes_ += blocks_.weight_bytes();
  final_norm_ = nn::RMSNorm(enc, "final_layer_norm", d, cfg_.eps);
  weight_bytes_ += static_cast<size_t>(d) * sizeof(float);
  report_ = root.finish();
}

T5Encoder::Block T5Encoder::build_block(const T5Config& cfg, const nn::WeightBinder& b, int64_t i,
                                       const nn::ModuleContext& ctx) {
  const int64_t d = cfg.d_model, inner = cfg.inner_dim();
  Block blk;
  blk.d_model = d;
  nn::WeightBinder attn = b.sub("layer.0"), ff = b.sub("layer.1");
  nn::WeightBinder sa = attn.sub("SelfAttention"), dense = ff.sub("DenseReluDense");
  blk.attn_norm = nn::RMSNorm(attn, "layer_norm", d, cfg.eps);
  blk.qkv = nn::LinearGroup(sa, {"q", "k", "v"}, "qkv", d, {inner, inner, inner}, false, ctx);
  blk.o = nn::Linear(sa, "o", inner, d, false, ctx);
  if (i == 0 || cfg.umt5)
    blk.rel_bias = nn::to_f32_param(sa.get("relative_attention_bias.weight", {cfg.num_buckets, cfg.num_heads}));
  blk.ff_norm = nn::RMSNorm(ff, "layer_norm", d, cfg.eps);
  blk.wi0 = nn::Linear(dense, cfg.gated ? "wi_0" : "wi", d, cfg.d_ff, false, ctx);
  if (cfg.gated) blk.wi1 = nn::Linear(dense, "wi_1", d, cfg.d_ff, false, ctx);
  blk.wo = nn::Linear(dense, "wo", cfg.d_ff, d, false, ctx);
  return blk;
}

size_t T5Encoder::Block::weight_bytes() const {
  size_t n = static_cast<size_t>(2 * d_model + (rel_bias.defined() ? rel_bias.numel() : 0)) * sizeof(float);
  n += qkv.weight_bytes();
  for (const nn::Linear* l : {&o, &wi0, &wi1, &wo}) n += l->weight_bytes();
  return n;
}

Tensor T5Encoder::embed(const Tensor& ids) const {
  const int64_t b = ids.size(0), l = ids.size(1), d = cfg_.d_model;
  std::vector<int64_t> idv(static_cast<size_t>(b * l));
  Tensor c = ids.contiguous();
  if (c.dtype() == DType::I64) {
    std::memcpy(idv.data(), c.data<int64_t>(), idv.size() * sizeof(int64_t));
  } else if (c.dtype() == DType::I32) {
    for (size_t i = 0; i < idv.size(); ++i) idv[i] = c.data<int32_t>()[i];
  } else {
    fail("[", class_name(), "] input_ids must be I64 or I32, found ", ids.desc());
  }
  Tensor x = Tensor::empty({b, l, d}, DType::F32);
  Tensor rows = x.reshape({b * l, d});
  for (size_t i = 0; i < idv.size(); ++i) {
    const int64_t id = idv[i];
    QDIT_CHECK(id >= 0 && id < cfg_.vocab_size, "[", class_name(), "] input_ids[", static_cast<int64_t>(i) / l, ", ",
               static_cast<int64_t>(i) % l, "] = ", id, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
    if (embed_tokens_.dtype() == DType::F32) {
      std::memcpy(x.data<float>() + i * d, embed_tokens_.data<float>() + id * d, static_cast<size_t>(d) * sizeof(float));
    } else {
      Tensor dst = rows.select(0, static_cast<int64_t>(i));
      dst.copy_from(embed_tokens_.select(0, id));
    }
  }
  return x;
}

TextEncoderOutput T5Encoder::encode(const Tensor& ids, const Tensor& attention_mask, bool output_hidden_states) const {
  QDIT_CHECK(ids.defined() && ids.dim() == 2 && ids.size(0) > 0 && ids.size(1) > 0, "[", class_name(),
             "] input_ids must be a non-empty [B, L] tensor, found ", ids.defined() ? ids.desc() : "none");
  const int64_t b = ids.size(0), l = ids.size(1), heads = cfg_.num_heads;
  Tensor x = embed(ids);

  // One additive mask per call (T5: the layer-0 bias is shared by all blocks) or per block (UMT5),
  // holding bias + (1 - mask) * finfo.min; without a mask it broadcasts over the batch.
  const std::vector<float> key_mask =
      attention_mask.defined() ? t5::extended_key_mask(attention_mask, b, l) : std::vector<float>();
  const std::vector<int32_t> buckets = t5::relative_position_buckets(l, l, cfg_.num_buckets, cfg_.max_distance);
  Tensor bias = Tensor::empty({key_mask.empty() ? 1 : b, heads, l, l}, DType::F32, MemTag::Workspace);

  TextEncoderOutput out;
  const kernels::GemmOptions residual{kernels::Activation::None, /*accumulate=*/true};
  blocks_.for_each([&](const Block& blk) {
    if (output_hidden_states) out.hidden_states.push_back(x.clone());
    if (blk.rel_bias.defined()) t5::fill_attention_bias(blk.rel_bias, buckets, key_mask, bias);

    // Self-attention: no 1/sqrt(d) scaling in T5; the residual add is fused into the o GEMM.
    Tensor h = blk.attn_norm(x);
    const std::vector<Tensor> qkv = blk.qkv(h);
    Tensor a = nn::multi_head_attention(qkv[0], qkv[1], qkv[2], heads, &bias, 1.0f, compute_);
    blk.o.forward_into(a, x, residual);

    // Feed-forward: wo(act(wi_0 h) * wi_1 h), or wo(act(wi h)).
    h = blk.ff_norm(x);
    Tensor g = blk.wi0(h, kernels::GemmOptions{cfg_.act, false});
    if (cfg_.gated) kernels::binary_inplace(g, blk.wi1(h), kernels::BinaryOp::Mul);
    blk.wo.forward_into(g, x, residual);
  });
  out.last_hidden_state = final_norm_(x);
  // transformers appends the final-norm output in place of the last block's raw output.
  if (output_hidden_states) out.hidden_states.push_back(out.last_hidden_state);
  return out;
}

void register_t5_models() {
  register_model("T5EncoderModel", [](const ModelSource& src) { return std::make_unique<T5Encoder>(src, false); });
  register_model("UMT5EncoderModel", [](const ModelSource& src) { return std::make_unique<T5Encoder>(src, true); });
}

}  // namespace qdit::models
