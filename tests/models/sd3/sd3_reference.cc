#include "sd3_reference.h"

#include <cmath>
#include <string>

#include "qdit/kernels/attention.h"
#include "qdit/kernels/gemm.h"
#include "qdit/nn/embeddings.h"

namespace qdit::testing::sd3 {
namespace {

using kernels::Activation;

struct Ref {
  const io::WeightSource& w;
  Tensor lin(const Tensor& x, const std::string& name, Activation act = Activation::None) const {
    return kernels::linear_reference(x, w.tensor(name + ".weight"), w.tensor(name + ".bias"), act);
  }
};

float silu(float v) { return v / (1.0f + std::exp(-v)); }

// LayerNorm(no affine, eps 1e-6)(x[B,S,D]) * (1 + scale) + shift; emb [B, K*D] holds chunk `shift_i`
// and `scale_i` (chunk indices).
Tensor ln_mod(const Tensor& x, const Tensor& emb, int shift_i, int scale_i) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), k = emb.size(1);
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  const float* ep = emb.data<float>();
  float* yp = y.data<float>();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < s; ++j) {
      const float* r = xp + (i * s + j) * d;
      double mean = 0, var = 0;
      for (int64_t c = 0; c < d; ++c) mean += r[c];
      mean /= d;
      for (int64_t c = 0; c < d; ++c) var += (r[c] - mean) * (r[c] - mean);
      var /= d;
      const double inv = 1.0 / std::sqrt(var + 1e-6);
      for (int64_t c = 0; c < d; ++c) {
        const double shift = ep[i * k + shift_i * d + c], scale = ep[i * k + scale_i * d + c];
        yp[(i * s + j) * d + c] = static_cast<float>((r[c] - mean) * inv * (1.0 + scale) + shift);
      }
    }
  return y;
}

// x += gate(chunk g of emb) * y.
void gated_add(Tensor& x, const Tensor& y, const Tensor& emb, int g) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), k = emb.size(1);
  float* xp = x.data<float>();
  const float* yp = y.data<float>();
  const float* ep = emb.data<float>();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < s; ++j)
      for (int64_t c = 0; c < d; ++c) xp[(i * s + j) * d + c] += ep[i * k + g * d + c] * yp[(i * s + j) * d + c];
}

// cat([a, b], dim=1) for [B, S, D] tensors.
Tensor cat1(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(0), sa = a.size(1), sb = b.size(1), d = a.size(2);
  Tensor y = Tensor::empty({n, sa + sb, d}, DType::F32);
  std::vector<float> av = a.to_vector(), bv = b.to_vector();
  float* yp = y.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < sa * d; ++j) yp[i * (sa + sb) * d + j] = av[i * sa * d + j];
    for (int64_t j = 0; j < sb * d; ++j) yp[i * (sa + sb) * d + sa * d + j] = bv[i * sb * d + j];
  }
  return y;
}

Tensor heads(const Tensor& x, int64_t h) {  // [B, S, H*D] -> [B, H, S, D]
  return x.reshape({x.size(0), x.size(1), h, x.size(2) / h}).permute({0, 2, 1, 3}).contiguous();
}

}  // namespace

Tensor crop_table(const Tensor& table, int64_t m, int64_t gh, int64_t gw) {
  const int64_t d = table.size(-1), top = (m - gh) / 2, left = (m - gw) / 2;
  const std::vector<float> t = table.to_vector();
  Tensor out = Tensor::empty({gh * gw, d}, DType::F32);
  for (int64_t y = 0; y < gh; ++y)
    for (int64_t z = 0; z < gw; ++z)
      for (int64_t o = 0; o < d; ++o) out.data<float>()[(y * gw + z) * d + o] = t[((top + y) * m + left + z) * d + o];
  return out;
}

Tensor reference_forward(const io::WeightSource& w, const models::SD3Config& c, const Tensor& pos_table,
                         const RefInputs& in) {
  const Ref r{w};
  const int64_t b = in.latents.size(0), cin = c.in_channels, hh = in.latents.size(2), ww = in.latents.size(3);
  const int64_t p = c.patch_size, gh = hh / p, gw = ww / p, n = gh * gw, d = c.inner_dim;

  // Patch embedding as an explicit strided convolution, then the grid's position table.
  const Tensor cw = w.tensor("pos_embed.proj.weight"), cb = w.tensor("pos_embed.proj.bias");
  const std::vector<float> lat = in.latents.to_vector(), wv = cw.to_vector(), bv = cb.to_vector();
  const std::vector<float> pos = pos_table.to_vector();
  Tensor x = Tensor::empty({b, n, d}, DType::F32);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t z = 0; z < gw; ++z)
        for (int64_t o = 0; o < d; ++o) {
          double acc = bv[o];
          for (int64_t ch = 0; ch < cin; ++ch)
            for (int64_t u = 0; u < p; ++u)
              for (int64_t v = 0; v < p; ++v)
                acc += static_cast<double>(wv[((o * cin + ch) * p + u) * p + v]) *
                       lat[((i * cin + ch) * hh + y * p + u) * ww + z * p + v];
          x.data<float>()[(i * n + y * gw + z) * d + o] =
              static_cast<float>(acc) + pos[(y * gw + z) * d + o];
        }

  // temb = TimestepEmbedding(Timesteps(t)) + PixArtAlphaTextProjection(pooled), then SiLU for every AdaLN.
  Tensor temb = r.lin(r.lin(nn::timestep_embedding(in.timestep, 256, true, 0.0f),
                            "time_text_embed.timestep_embedder.linear_1", Activation::Silu),
                      "time_text_embed.timestep_embedder.linear_2");
  const Tensor pe = r.lin(r.lin(in.pooled, "time_text_embed.text_embedder.linear_1", Activation::Silu),
                          "time_text_embed.text_embedder.linear_2");
  Tensor st = Tensor::empty(temb.shape(), DType::F32);
  for (int64_t i = 0; i < temb.numel(); ++i) st.data<float>()[i] = silu(temb.data<float>()[i] + pe.data<float>()[i]);

  Tensor ctx = r.lin(in.encoder_hidden_states, "context_embedder");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string pre = "transformer_blocks." + std::to_string(l) + ".";
    const bool last = l == c.num_layers - 1;
    const Tensor e = r.lin(st, pre + "norm1.linear"), ec = r.lin(st, pre + "norm1_context.linear");
    const Tensor h = ln_mod(x, e, 0, 1);
    const Tensor hc = last ? ln_mod(ctx, ec, 1, 0) : ln_mod(ctx, ec, 0, 1);  // continuous: (scale, shift)
    const Tensor q = cat1(r.lin(h, pre + "attn.to_q"), r.lin(hc, pre + "attn.add_q_proj"));
    const Tensor k = cat1(r.lin(h, pre + "attn.to_k"), r.lin(hc, pre + "attn.add_k_proj"));
    const Tensor v = cat1(r.lin(h, pre + "attn.to_v"), r.lin(hc, pre + "attn.add_v_proj"));
    const Tensor a = kernels::attention_reference(heads(q, c.heads), heads(k, c.heads), heads(v, c.heads), nullptr,
                                                  1.0f / std::sqrt(static_cast<float>(c.head_dim)));
    gated_add(x, r.lin(a.slice(1, 0, n).contiguous(), pre + "attn.to_out.0"), e, 2);
    gated_add(x, r.lin(r.lin(ln_mod(x, e, 3, 4), pre + "ff.net.0.proj", Activation::GeluTanh), pre + "ff.net.2"), e,
              5);
    if (!last) {
      gated_add(ctx, r.lin(a.slice(1, n, a.size(1)).contiguous(), pre + "attn.to_add_out"), ec, 2);
      gated_add(ctx,
                r.lin(r.lin(ln_mod(ctx, ec, 3, 4), pre + "ff_context.net.0.proj", Activation::GeluTanh),
                      pre + "ff_context.net.2"),
                ec, 5);
    }
  }
  const Tensor y = r.lin(ln_mod(x, r.lin(st, "norm_out.linear"), 1, 0), "proj_out");  // [B, N, p*p*C]
  const int64_t co = c.out_channels;
  Tensor out = Tensor::empty({b, co, hh, ww}, DType::F32);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t y0 = 0; y0 < gh; ++y0)
      for (int64_t z0 = 0; z0 < gw; ++z0)
        for (int64_t u = 0; u < p; ++u)
          for (int64_t v = 0; v < p; ++v)
            for (int64_t ch = 0; ch < co; ++ch)
              out.data<float>()[((i * co + ch) * hh + y0 * p + u) * ww + z0 * p + v] =
                  y.data<float>()[(i * n + y0 * gw + z0) * p * p * co + (u * p + v) * co + ch];
  return out;
}

}  // namespace qdit::testing::sd3
