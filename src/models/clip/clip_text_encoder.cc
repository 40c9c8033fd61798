#include "qdit/models/clip/clip_text_encoder.h"

#include <limits>
#include <memory>

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/kernels/norm.h"
#include "qdit/models/registry.h"
#include "qdit/nn/attention.h"

namespace qdit::models {

namespace {

constexpr const char* kWhere = "[clip] ";

// transformers' ACT2FN names a CLIP config may carry. quick_gelu is not a GEMM epilogue, so it
// runs after fc1; the others fuse into it.
void parse_activation(const std::string& name, const std::string& file, bool& quick, kernels::Activation& act) {
  quick = false;
  if (name == "quick_gelu") {
    quick = true;
    act = kernels::Activation::None;
  } else if (name == "gelu") {
    act = kernels::Activation::GeluErf;
  } else if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
    act = kernels::Activation::GeluTanh;
  } else if (name == "relu") {
    act = kernels::Activation::Relu;
  } else if (name == "silu" || name == "swish") {
    act = kernels::Activation::Silu;
  } else {
    fail("[", file, "] key 'hidden_act': expected quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu or silu, found '",
         name, "'");
  }
}

std::vector<int64_t> read_ids(const Tensor& ids) {
  QDIT_CHECK(ids.defined(), kWhere, "input_ids: expected an I64 [B, L] tensor, found an undefined tensor");
  QDIT_CHECK(ids.dim() == 2 && ids.size(0) >= 1 && ids.size(1) >= 1, kWhere,
             "input_ids: expected a non-empty [B, L] tensor, found ", ids.desc());
  const Tensor c = ids.contiguous();
  std::vector<int64_t> v(static_cast<size_t>(c.numel()));
  if (c.dtype() == DType::I64) {
    const int64_t* p = c.data<int64_t>();
    v.assign(p, p + c.numel());
  } else if (c.dtype() == DType::I32) {
    const int32_t* p = c.data<int32_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  } else {
    fail(kWhere, "input_ids: expected I64 or I32, found ", ids.desc());
  }
  return v;
}

// Additive attention mask as transformers builds it in float32: the causal part is finfo.min
// above the diagonal; a padding mask adds finfo.min at every key whose mask value is not 1
// ((1 - m) != 0). Where both apply the float sum overflows to -inf, exactly as in PyTorch.
// Result: [1, 1, L, L] without a padding mask, [B, 1, L, L] with one.
Tensor build_attention_mask(int64_t batch, int64_t len, const Tensor& attention_mask) {
  const float kMin = std::numeric_limits<float>::lowest();
  if (!attention_mask.defined()) {
    Tensor m = Tensor::empty({1, 1, len, len}, DType::F32);
    float* p = m.data<float>();
    for (int64_t i = 0; i < len; ++i)
      for (int64_t j = 0; j < len; ++j) p[i * len + j] = j > i ? kMin : 0.0f;
    return m;
  }
  QDIT_CHECK(attention_mask.shape() == (Shape{batch, len}), kWhere, "attention_mask: expected [", batch, ", ", len,
             "] like input_ids, found ", attention_mask.desc());
  const std::vector<float> keep = attention_mask.to_vector();
  Tensor m = Tensor::empty({batch, 1, len, len}, DType::F32);
  float* p = m.data<float>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t j = 0; j < len; ++j) {
        const float causal = j > i ? kMin : 0.0f;
        const float pad = (1.0f - keep[b * len + j]) != 0.0f ? kMin : 0.0f;
        p[(b * len + i) * len + j] = causal + pad;
      }
  return m;
}

// Rows pos[b] of x [B, L, D] -> [B, D].
Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& pos) {
  const int64_t batch = x.size(0), d = x.size(2);
  Tensor out = Tensor::empty({batch, d}, DType::F32);
  for (int64_t b = 0; b < batch; ++b) out.select(0, b).copy_from(x.select(0, b).select(0, pos[b]));
  return out;
}

}  // namespace

ClipTextEncoder::ClipTextEncoder(const ModelSource& src, bool with_projection) : with_projection_(with_projection) {
  QDIT_CHECK(src.config, kWhere, src.component, ": no config");
  const io::JsonConfig& cfg = *src.config;
  const std::string& file = cfg.path();
  // Defaults: transformers' CLIPTextConfig.
  hidden_ = cfg.get_or<int64_t>("hidden_size", 512);
  intermediate_ = cfg.get_or<int64_t>("intermediate_size", 2048);
  const int64_t n_layers = cfg.get_or<int64_t>("num_hidden_layers", 12);
  heads_ = cfg.get_or<int64_t>("num_attention_heads", 8);
  max_positions_ = cfg.get_or<int64_t>("max_position_embeddings", 77);
  vocab_ = cfg.get_or<int64_t>("vocab_size", 49408);
  projection_dim_ = cfg.get_or<int64_t>("projection_dim", 512);
  eos_token_id_ = cfg.get_or<int64_t>("eos_token_id", 49407);
  const float eps = cfg.get_or<float>("layer_norm_eps", 1e-5f);
  parse_activation(cfg.get_or("hidden_act", "quick_gelu"), file, quick_gelu_, act_);
  compute_ = src.ctx.compute;

  auto positive = [&](const char* key, int64_t v) {
    QDIT_CHECK(v > 0, "[", file, "] key '", key, "': expected a positive integer, found ", v);
  };
  positive("hidden_size", hidden_);
  positive("intermediate_size", intermediate_);
  positive("num_hidden_layers", n_layers);
  positive("num_attention_heads", heads_);
  positive("max_position_embeddings", max_positions_);
  positive("vocab_size", vocab_);
  if (with_projection_) positive("projection_dim", projection_dim_);
  QDIT_CHECK(hidden_ % heads_ == 0, "[", file, "] hidden_size ", hidden_, " is not divisible by num_attention_heads ",
             heads_);
  QDIT_CHECK(eps > 0.0f, "[", file, "] key 'layer_norm_eps': expected a positive number, found ", eps);

  nn::WeightBinder root(src.weights, src.component);
  nn::WeightBinder tm = root.sub("text_model");
  nn::WeightBinder emb = tm.sub("embeddings");
  token_embedding_ = emb.sub("token_embedding").get("weight", {vocab_, hidden_});
  position_embedding_ = nn::to_f32_param(emb.sub("position_embedding").get("weight", {max_positions_, hidden_}));
  if (token_embedding_.defined()) {
    QDIT_CHECK(dtype_info(token_embedding_.dtype()).is_float, kWhere, tm.path("embeddings.token_embedding.weight"),
               ": expected a float tensor, found ", token_embedding_.desc());
    weight_bytes_ += token_embedding_.nbytes();
  }
  weight_bytes_ += static_cast<size_t>(max_positions_ * hidden_) * sizeof(float);

  const nn::ModuleContext& ctx = src.ctx;
  nn::WeightBinder enc = tm.sub("encoder");
  layers_ = nn::LazyBlocks<Layer>(
      enc, "layers", n_layers, ctx,
      [hidden = hidden_, inter = intermediate_, eps](const nn::WeightBinder& lb, int64_t, const nn::ModuleContext& c) {
        nn::WeightBinder attn = lb.sub("self_attn");
        Layer l;
        l.layer_norm1 = nn::LayerNorm(lb, "layer_norm1", hidden, eps);
        l.layer_norm2 = nn::LayerNorm(lb, "layer_norm2", hidden, eps);
        l.qkv = nn::LinearGroup(attn, {"q_proj", "k_proj", "v_proj"}, "qkv_proj", hidden, {hidden, hidden, hidden},
                                true, c);
        l.out_proj = nn::Linear(attn, "out_proj", hidden, hidden, true, c);
        l.fc1 = nn::Linear(lb.sub("mlp"), "fc1", hidden, inter, true, c);
        l.fc2 = nn::Linear(lb.sub("mlp"), "fc2", inter, hidden, true, c);
        return l;
      });
  weight_bytes_ += layers_.weight_bytes();
  final_layer_norm_ = nn::LayerNorm(tm, "final_layer_norm", hidden_, eps);
  weight_bytes_ += static_cast<size_t>(2 * hidden_) * sizeof(float);
  if (with_projection_) {
    text_projection_ = nn::Linear(root, "text_projection", hidden_, projection_dim_, false, ctx);
    weight_bytes_ += text_projection_.weight_bytes();
  }
  // Throws listing every missing / wrong-shape tensor; text_model.embeddings.position_ids (a
  // buffer older checkpoints carry) and, for CLIPTextModel, a text_projection stay unused.
  root.finish();
}

size_t ClipTextEncoder::Layer::weight_bytes() const {
  size_t n = static_cast<size_t>(4 * out_proj.out_features()) * sizeof(float) + qkv.weight_bytes();  // + 2 LayerNorms
  for (const nn::Linear* lin : {&out_proj, &fc1, &fc2}) n += lin->weight_bytes();
  return n;
}

std::vector<int64_t> ClipTextEncoder::pooling_positions(const Tensor& ids) const {
  const std::vector<int64_t> v = read_ids(ids);
  const int64_t batch = ids.size(0), len = ids.size(1);
  std::vector<int64_t> pos(static_cast<size_t>(batch), 0);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* row = v.data() + b * len;
    int64_t best = 0;
    for (int64_t j = 0; j < len; ++j) {
      if (eos_token_id_ == 2) {
        if (row[j] > row[best]) best = j;  // first maximum
      } else if (row[j] == eos_token_id_) {
        best = j;
        break;
      }
    }
    pos[static_cast<size_t>(b)] = best;
  }
  return pos;
}

Tensor ClipTextEncoder::embed(const std::vector<int64_t>& ids, int64_t batch, int64_t len) const {
  Tensor x = Tensor::empty({batch, len, hidden_}, DType::F32);
  const float* pe = position_embedding_.data<float>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t l = 0; l < len; ++l) {
      Tensor row = x.select(0, b).select(0, l);
      row.copy_from(token_embedding_.select(0, ids[b * len + l]));  // casts f16/bf16 rows
      float* r = row.data<float>();
      for (int64_t d = 0; d < hidden_; ++d) r[d] += pe[l * hidden_ + d];
    }
  return x;
}

// Pre-LN block, in place on x: x += out_proj(attn(LN1 x)); x += fc2(act(fc1(LN2 x))).
void ClipTextEncoder::run_layer(const Layer& l, Tensor& x, const Tensor& mask) const {
  Tensor h = l.layer_norm1(x);
  std::vector<Tensor> qkv = l.qkv(h);
  Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  Tensor a = nn::multi_head_attention(q, k, v, heads_, &mask, 0.0f, compute_);
  l.out_proj.forward_into(a, x, {kernels::Activation::None, /*accumulate=*/true});
  h = l.layer_norm2(x);
  Tensor f = l.fc1(h, {act_, false});
  if (quick_gelu_) f = kernels::quick_gelu(f);
  l.fc2.forward_into(f, x, {kernels::Activation::None, /*accumulate=*/true});
}

TextEncoderOutput ClipTextEncoder::encode(const Tensor& ids, const Tensor& attention_mask,
                                          bool output_hidden_states) const {
  const std::vector<int64_t> v = read_ids(ids);
  const int64_t batch = ids.size(0), len = ids.size(1);
  QDIT_CHECK(len <= max_positions_, kWhere, "input_ids: sequence length ", len, " exceeds max_position_embeddings ",
             max_positions_);
  for (size_t i = 0; i < v.size(); ++i)
    QDIT_CHECK(v[i] >= 0 && v[i] < vocab_, kWhere, "input_ids: token id ", v[i], " at [", i / len, ", ", i % len,
               "] is outside the vocabulary [0, ", vocab_, ")");
  const Tensor mask = build_attention_mask(batch, len, attention_mask);

  TextEncoderOutput out;
  Tensor x = embed(v, batch, len);
  if (output_hidden_states) out.hidden_states.push_back(x.clone());
  layers_.for_each([&](const Layer& l) {
    run_layer(l, x, mask);
    if (output_hidden_states) out.hidden_states.push_back(x.clone());
  });
  out.last_hidden_state = final_layer_norm_(x);
  out.pooled = gather_rows(out.last_hidden_state, pooling_positions(ids));
  if (with_projection_) out.text_embeds = text_projection_(out.pooled);
  return out;
}

void register_clip_models() {
  register_model("CLIPTextModel", [](const ModelSource& src) -> std::unique_ptr<Model> {
    return std::make_unique<ClipTextEncoder>(src, false);
  });
  register_model("CLIPTextModelWithProjection", [](const ModelSource& src) -> std::unique_ptr<Model> {
    return std::make_unique<ClipTextEncoder>(src, true);
  });
}

}  // namespace qdit::models
