#include "pixart_reference.h"

#include <cmath>
#include <fstream>
#include <random>

#include "qdit/core/error.h"
#include "qdit/io/safetensors.h"
#include "qdit/kernels/attention.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/layout.h"

namespace qdit::testing::pixart {

namespace {

using kernels::Activation;

struct Ref {
  const io::WeightSource& w;
  Tensor get(const std::string& name) const { return w.tensor(name).to(DType::F32); }
  Tensor lin(const Tensor& x, const std::string& name, Activation act = Activation::None) const {
    const Tensor bias = w.contains(name + ".bias") ? get(name + ".bias") : Tensor();
    return kernels::linear_reference(x, get(name + ".weight"), bias, act);
  }
};

// numpy get_2d_sincos_pos_embed(embed_dim, (gh, gw), base_size, interpolation_scale): float32 grid
// arange(n) / (n / base_size) / scale; meshgrid(w, h) so the first half of the channels encodes w.
std::vector<float> pos_embed_ref(int64_t dim, int64_t gh, int64_t gw, double base, float interp) {
  const int64_t q = dim / 4;
  auto grid = [&](int64_t i, int64_t n) {
    const float step = static_cast<float>(static_cast<double>(n) / base);
    return static_cast<double>((static_cast<float>(i) / step) / interp);
  };
  std::vector<float> out(static_cast<size_t>(gh * gw * dim));
  for (int64_t r = 0; r < gh; ++r)
    for (int64_t c = 0; c < gw; ++c)
      for (int64_t k = 0; k < q; ++k) {
        const double omega = 1.0 / std::pow(10000.0, static_cast<double>(k) / (dim / 2 / 2.0));
        float* row = &out[static_cast<size_t>((r * gw + c) * dim)];
        row[k] = static_cast<float>(std::sin(grid(c, gw) * omega));
        row[q + k] = static_cast<float>(std::cos(grid(c, gw) * omega));
        row[2 * q + k] = static_cast<float>(std::sin(grid(r, gh) * omega));
        row[3 * q + k] = static_cast<float>(std::cos(grid(r, gh) * omega));
      }
  return out;
}

// Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0) in float32: [B, 256] = [cos, sin].
Tensor time_proj(const std::vector<float>& t) {
  const int64_t half = 128, n = static_cast<int64_t>(t.size());
  Tensor out = Tensor::empty({n, 2 * half}, DType::F32);
  float* o = out.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < half; ++k) {
      const float expo = -std::log(10000.0f) * static_cast<float>(k) / static_cast<float>(half);
      const float arg = t[static_cast<size_t>(i)] * std::exp(expo);
      o[i * 2 * half + k] = std::cos(arg);
      o[i * 2 * half + half + k] = std::sin(arg);
    }
  return out;
}

// LayerNorm over the last dim (double statistics), optional affine.
Tensor layer_norm_ref(const Tensor& x, float eps, const Tensor& weight, const Tensor& bias) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const std::vector<float> xv = x.to_vector();
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += xv[r * d + j];
    mean /= d;
    for (int64_t j = 0; j < d; ++j) var += (xv[r * d + j] - mean) * (xv[r * d + j] - mean);
    var /= d;
    for (int64_t j = 0; j < d; ++j) {
      double v = (xv[r * d + j] - mean) / std::sqrt(var + eps);
      if (weight.defined()) v = v * weight.item_f32(j) + bias.item_f32(j);
      y.data<float>()[r * d + j] = static_cast<float>(v);
    }
  }
  return y;
}

// x[b, s, :] * (1 + scale[b, :]) + shift[b, :], with shift/scale given as [B, D] row-major vectors.
void modulate_ref(Tensor& x, const std::vector<float>& shift, const std::vector<float>& scale) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  float* p = x.data<float>();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t t = 0; t < s; ++t)
      for (int64_t j = 0; j < d; ++j) {
        float& v = p[(i * s + t) * d + j];
        v = v * (1.0f + scale[i * d + j]) + shift[i * d + j];
      }
}

// x += gate * y (gate [B, D] or empty for a plain residual).
void residual_ref(Tensor& x, const Tensor& y, const std::vector<float>& gate) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  float* p = x.data<float>();
  const std::vector<float> yv = y.to_vector();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t t = 0; t < s; ++t)
      for (int64_t j = 0; j < d; ++j)
        p[(i * s + t) * d + j] += (gate.empty() ? 1.0f : gate[i * d + j]) * yv[(i * s + t) * d + j];
}

Tensor heads_view(const Tensor& x, int64_t heads) {
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).permute({0, 2, 1, 3});
}

Tensor attention_ref(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, const Tensor* mask) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.size(2) / heads));
  return kernels::attention_reference(heads_view(q, heads), heads_view(k, heads), heads_view(v, heads), mask, scale);
}

}  // namespace

Tensor reference_forward(const io::WeightSource& w, const models::PixArtConfig& c, const RefInputs& in) {
  const Ref r{w};
  const int64_t batch = in.latents.size(0), cin = c.in_channels, hgt = in.latents.size(2), wid = in.latents.size(3);
  const int64_t p = c.patch_size, gh = hgt / p, gw = wid / p, n = gh * gw, d = c.inner_dim;

  // Patch embedding: Conv2d(kernel = stride = p) by loops, flatten(2).transpose(1, 2), + pos embed.
  const std::vector<float> lat = in.latents.to_vector();
  const std::vector<float> cw = r.get("pos_embed.proj.weight").to_vector();
  const std::vector<float> cb = r.get("pos_embed.proj.bias").to_vector();
  const std::vector<float> pos =
      pos_embed_ref(d, gh, gw, static_cast<double>(c.sample_size / p), c.interpolation_scale);
  Tensor x = Tensor::empty({batch, n, d}, DType::F32);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < gh; ++i)
      for (int64_t j = 0; j < gw; ++j)
        for (int64_t o = 0; o < d; ++o) {
          double acc = cb[o];
          for (int64_t ch = 0; ch < cin; ++ch)
            for (int64_t pi = 0; pi < p; ++pi)
              for (int64_t qi = 0; qi < p; ++qi)
                acc += static_cast<double>(cw[((o * cin + ch) * p + pi) * p + qi]) *
                       lat[((b * cin + ch) * hgt + i * p + pi) * wid + j * p + qi];
          x.data<float>()[(b * n + i * gw + j) * d + o] = static_cast<float>(acc) + pos[(i * gw + j) * d + o];
        }

  // AdaLayerNormSingle.
  Tensor temb = r.lin(r.lin(time_proj(in.timestep), "adaln_single.emb.timestep_embedder.linear_1", Activation::Silu),
                      "adaln_single.emb.timestep_embedder.linear_2");
  if (c.use_additional_conditions) {
    const std::string e = "adaln_single.emb.";
    Tensor res = r.lin(r.lin(time_proj(in.resolution), e + "resolution_embedder.linear_1", Activation::Silu),
                       e + "resolution_embedder.linear_2");  // [2B, D/3]
    Tensor ar = r.lin(r.lin(time_proj(in.aspect_ratio), e + "aspect_ratio_embedder.linear_1", Activation::Silu),
                      e + "aspect_ratio_embedder.linear_2");  // [B, D/3]
    Tensor cond = kernels::concat({res.reshape({batch, 2 * d / 3}), ar}, 1);
    for (int64_t i = 0; i < batch * d; ++i) temb.data<float>()[i] += cond.data<float>()[i];
  }
  Tensor silu = temb.clone();
  for (int64_t i = 0; i < silu.numel(); ++i) {
    float& v = silu.data<float>()[i];
    v = v / (1.0f + std::exp(-v));
  }
  const std::vector<float> t6 = r.lin(silu, "adaln_single.linear").to_vector();  // [B, 6D]

  Tensor ctx = in.encoder_hidden_states.contiguous();
  if (c.caption_channels > 0)
    ctx = r.lin(r.lin(ctx, "caption_projection.linear_1", Activation::GeluTanh), "caption_projection.linear_2");
  Tensor bias;
  if (in.mask.defined()) {
    const int64_t l = in.mask.size(1);
    bias = Tensor::empty({batch, 1, 1, l}, DType::F32);
    for (int64_t i = 0; i < batch * l; ++i) bias.data<float>()[i] = (1.0f - in.mask.item_f32(i)) * -10000.0f;
  }

  for (int64_t li = 0; li < c.num_layers; ++li) {
    const std::string pre = "transformer_blocks." + std::to_string(li) + ".";
    const std::vector<float> table = r.get(pre + "scale_shift_table").to_vector();
    std::vector<std::vector<float>> mod(6, std::vector<float>(static_cast<size_t>(batch * d)));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < 6; ++k)
        for (int64_t j = 0; j < d; ++j) mod[k][b * d + j] = table[k * d + j] + t6[b * 6 * d + k * d + j];
    auto norm = [&](const std::string& name) {
      const bool aff = c.norm_elementwise_affine;
      return layer_norm_ref(x, c.norm_eps, aff ? r.get(pre + name + ".weight") : Tensor(),
                            aff ? r.get(pre + name + ".bias") : Tensor());
    };
    Tensor h = norm("norm1");
    modulate_ref(h, mod[0], mod[1]);
    Tensor a = attention_ref(r.lin(h, pre + "attn1.to_q"), r.lin(h, pre + "attn1.to_k"), r.lin(h, pre + "attn1.to_v"),
                             c.heads, nullptr);
    residual_ref(x, r.lin(a, pre + "attn1.to_out.0"), mod[2]);
    a = attention_ref(r.lin(x, pre + "attn2.to_q"), r.lin(ctx, pre + "attn2.to_k"), r.lin(ctx, pre + "attn2.to_v"),
                      c.heads, bias.defined() ? &bias : nullptr);
    residual_ref(x, r.lin(a, pre + "attn2.to_out.0"), {});
    h = norm("norm2");
    modulate_ref(h, mod[3], mod[4]);
    residual_ref(x, r.lin(r.lin(h, pre + "ff.net.0.proj", c.ff_act), pre + "ff.net.2"), mod[5]);
  }

  const std::vector<float> table = r.get("scale_shift_table").to_vector(), te = temb.to_vector();
  std::vector<float> shift(static_cast<size_t>(batch * d)), scale(shift.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < d; ++j) {
      shift[b * d + j] = table[j] + te[b * d + j];
      scale[b * d + j] = table[d + j] + te[b * d + j];
    }
  Tensor h = layer_norm_ref(x, 1e-6f, Tensor(), Tensor());
  modulate_ref(h, shift, scale);
  const std::vector<float> y = r.lin(h, "proj_out").to_vector();  // [B, N, p*p*C]
  const int64_t co = c.out_channels;
  Tensor out = Tensor::empty({batch, co, hgt, wid}, DType::F32);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < gh; ++i)
      for (int64_t j = 0; j < gw; ++j)
        for (int64_t pi = 0; pi < p; ++pi)
          for (int64_t qi = 0; qi < p; ++qi)
            for (int64_t ch = 0; ch < co; ++ch)
              out.data<float>()[((b * co + ch) * hgt + i * p + pi) * wid + j * p + qi] =
                  y[((b * n + i * gw + j) * p * p + pi * p + qi) * co + ch];
  return out;
}

std::map<std::string, Shape> checkpoint_shapes(const models::PixArtConfig& c) {
  const int64_t d = c.inner_dim, p = c.patch_size;
  std::map<std::string, Shape> s;
  auto linear = [&](const std::string& name, int64_t in, int64_t out, bool bias = true) {
    s[name + ".weight"] = {out, in};
    if (bias) s[name + ".bias"] = {out};
  };
  s["pos_embed.proj.weight"] = {d, c.in_channels, p, p};
  s["pos_embed.proj.bias"] = {d};
  linear("adaln_single.emb.timestep_embedder.linear_1", 256, d);
  linear("adaln_single.emb.timestep_embedder.linear_2", d, d);
  if (c.use_additional_conditions) {
    for (const char* e : {"resolution_embedder", "aspect_ratio_embedder"}) {
      linear(std::string("adaln_single.emb.") + e + ".linear_1", 256, d / 3);
      linear(std::string("adaln_single.emb.") + e + ".linear_2", d / 3, d / 3);
    }
  }
  linear("adaln_single.linear", d, 6 * d);
  if (c.caption_channels > 0) {
    linear("caption_projection.linear_1", c.caption_channels, d);
    linear("caption_projection.linear_2", d, d);
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string pre = "transformer_blocks." + std::to_string(i) + ".";
    s[pre + "scale_shift_table"] = {6, d};
    if (c.norm_elementwise_affine)
      for (const char* nm : {"norm1", "norm2"}) {
        s[pre + nm + ".weight"] = {d};
        s[pre + nm + ".bias"] = {d};
      }
    for (const char* a : {"attn1", "attn2"}) {
      const int64_t kv_in = std::string(a) == "attn2" ? c.cross_attention_dim : d;
      linear(pre + a + ".to_q", d, d, c.attention_bias);
      linear(pre + a + ".to_k", kv_in, d, c.attention_bias);
      linear(pre + a + ".to_v", kv_in, d, c.attention_bias);
      linear(pre + a + ".to_out.0", d, d);
    }
    linear(pre + "ff.net.0.proj", d, 4 * d);
    linear(pre + "ff.net.2", 4 * d, d);
  }
  s["scale_shift_table"] = {2, d};
  linear("proj_out", d, p * p * c.out_channels);
  return s;
}

void write_model_folder(const std::string& dir, const std::string& config_json,
                        const std::map<std::string, Shape>& shapes, uint32_t seed, float scale) {
  std::ofstream(dir + "/config.json") << config_json;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, shape] : shapes) {
    Tensor t = Tensor::empty(shape, DType::F32);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
    tensors.emplace_back(name, t);
  }
  io::save_safetensors(dir + "/diffusion_pytorch_model.safetensors", tensors);
}

Tensor cat0(const Tensor& a, const Tensor& b) { return kernels::concat({a.contiguous(), b.contiguous()}, 0); }

}  // namespace qdit::testing::pixart
