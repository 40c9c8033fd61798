#include "auraflow_reference.h"

#include <cmath>
#include <string>

#include "qdit/kernels/attention.h"
#include "qdit/kernels/gemm.h"
#include "qdit/nn/embeddings.h"
#include "support/random.h"

namespace qdit::testing::auraflow {
namespace {

using kernels::Activation;

constexpr double kEps = 1e-5;  // nn.LayerNorm's default: every FP32LayerNorm in AuraFlow

struct Ref {
  const io::WeightSource& w;
  // Bias only where the checkpoint has one (AuraFlow blocks have none).
  Tensor lin(const Tensor& x, const std::string& name, Activation act = Activation::None) const {
    const Tensor b = w.contains(name + ".bias") ? w.tensor(name + ".bias") : Tensor();
    return kernels::linear_reference(x, w.tensor(name + ".weight"), b, act);
  }
};

float silu(float v) { return v / (1.0f + std::exp(-v)); }

// Non-affine LayerNorm over the last dim.
Tensor ln(const Tensor& x) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  const std::vector<float> v = x.to_vector();
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < d; ++c) mean += v[r * d + c];
    mean /= d;
    for (int64_t c = 0; c < d; ++c) var += (v[r * d + c] - mean) * (v[r * d + c] - mean);
    var /= d;
    for (int64_t c = 0; c < d; ++c)
      y.data<float>()[r * d + c] = static_cast<float>((v[r * d + c] - mean) / std::sqrt(var + kEps));
  }
  return y;
}

// x[B,S,D] * (1 + chunk scale_i of emb) + chunk shift_i of emb; emb [B, K*D].
Tensor modulate(const Tensor& x, const Tensor& emb, int shift_i, int scale_i) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), k = emb.size(1);
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  const float* ep = emb.data<float>();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < s; ++j)
      for (int64_t c = 0; c < d; ++c)
        y.data<float>()[(i * s + j) * d + c] =
            xp[(i * s + j) * d + c] * (1.0f + ep[i * k + scale_i * d + c]) + ep[i * k + shift_i * d + c];
  return y;
}

// a + (chunk g of emb) * b.
Tensor gated_add(const Tensor& a, const Tensor& b, const Tensor& emb, int g) {
  const int64_t n = a.size(0), s = a.size(1), d = a.size(2), k = emb.size(1);
  Tensor y = Tensor::empty(a.shape(), DType::F32);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < s; ++j)
      for (int64_t c = 0; c < d; ++c) {
        const int64_t o = (i * s + j) * d + c;
        y.data<float>()[o] = a.data<float>()[o] + emb.data<float>()[i * k + g * d + c] * b.data<float>()[o];
      }
  return y;
}

// cat([a, b], dim=1) for [B, S, D] tensors.
Tensor cat1(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(0), sa = a.size(1), sb = b.size(1), d = a.size(2);
  Tensor y = Tensor::empty({n, sa + sb, d}, DType::F32);
  const std::vector<float> av = a.to_vector(), bv = b.to_vector();
  float* yp = y.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < sa * d; ++j) yp[i * (sa + sb) * d + j] = av[i * sa * d + j];
    for (int64_t j = 0; j < sb * d; ++j) yp[i * (sa + sb) * d + sa * d + j] = bv[i * sb * d + j];
  }
  return y;
}

Tensor rows(const Tensor& x, int64_t from, int64_t to) { return x.slice(1, from, to).contiguous(); }

// AuraFlowFeedForward: out_projection(silu(linear_1 x) * linear_2 x).
Tensor ff(const Ref& r, const Tensor& x, const std::string& pre) {
  Tensor a = r.lin(x, pre + "linear_1");
  const Tensor b = r.lin(x, pre + "linear_2");
  for (int64_t i = 0; i < a.numel(); ++i) a.data<float>()[i] = silu(a.data<float>()[i]) * b.data<float>()[i];
  return r.lin(a, pre + "out_projection");
}

Tensor heads(const Tensor& x, int64_t h) {
  return x.reshape({x.size(0), x.size(1), h, x.size(2) / h}).permute({0, 2, 1, 3}).contiguous();
}

// After the attention, in both block kinds (diffusers' residual is the block input x).
Tensor tail(const Ref& r, const Tensor& x, const Tensor& attn, const Tensor& e, const std::string& ff_pre) {
  const Tensor h = modulate(ln(gated_add(x, attn, e, 2)), e, 3, 4);
  return gated_add(x, ff(r, h, ff_pre), e, 5);
}

}  // namespace

std::vector<int64_t> pos_indices(int64_t m, int64_t gh, int64_t gw) {
  const int64_t side = static_cast<int64_t>(std::sqrt(static_cast<double>(m)));  // int(m ** 0.5)
  const int64_t starth = side / 2 - gh / 2, startw = side / 2 - gw / 2;
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < gh; ++i)
    for (int64_t j = 0; j < gw; ++j) idx.push_back((starth + i) * side + startw + j);
  return idx;
}

Tensor reference_forward(const io::WeightSource& w, const models::AuraFlowConfig& c, const RefInputs& in) {
  const Ref r{w};
  const int64_t b = in.latents.size(0), cin = c.in_channels, hh = in.latents.size(2), ww = in.latents.size(3);
  const int64_t p = c.patch_size, gh = hh / p, gw = ww / p, n = gh * gw, d = c.inner_dim, nh = c.heads;

  // Patches flattened as (c, p, q), the Linear projection, then the selected table rows.
  const std::vector<float> lat = in.latents.to_vector(), pw = w.tensor("pos_embed.proj.weight").to_vector(),
                           pb = w.tensor("pos_embed.proj.bias").to_vector(),
                           table = w.tensor("pos_embed.pos_embed").to_vector();
  const std::vector<int64_t> idx = pos_indices(c.pos_embed_max_size, gh, gw);
  Tensor x = Tensor::empty({b, n, d}, DType::F32);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t z = 0; z < gw; ++z)
        for (int64_t o = 0; o < d; ++o) {
          double acc = pb[o];
          for (int64_t ch = 0; ch < cin; ++ch)
            for (int64_t u = 0; u < p; ++u)
              for (int64_t v = 0; v < p; ++v)
                acc += static_cast<double>(pw[o * cin * p * p + (ch * p + u) * p + v]) *
                       lat[((i * cin + ch) * hh + y * p + u) * ww + z * p + v];
          x.data<float>()[(i * n + y * gw + z) * d + o] = static_cast<float>(acc) + table[idx[y * gw + z] * d + o];
        }

  // temb = TimestepEmbedding(Timesteps(t, scale=1000)); SiLU(temb) feeds every modulation.
  Tensor st = r.lin(r.lin(nn::timestep_embedding(in.timestep, 256, true, 0.0f, 1000.0f), "time_step_proj.linear_1",
                          Activation::Silu),
                    "time_step_proj.linear_2");
  for (int64_t i = 0; i < st.numel(); ++i) st.data<float>()[i] = silu(st.data<float>()[i]);

  // Text stream: 8 register tokens, then the projected caption.
  const Tensor cap = r.lin(in.encoder_hidden_states, "context_embedder");
  const std::vector<float> reg = w.tensor("register_tokens").to_vector();
  Tensor regs = Tensor::empty({b, 8, d}, DType::F32);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < 8 * d; ++j) regs.data<float>()[i * 8 * d + j] = reg[j];
  Tensor ctx = cat1(regs, cap);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  for (int64_t l = 0; l < c.num_mmdit_layers; ++l) {
    const std::string pre = "joint_transformer_blocks." + std::to_string(l) + ".";
    const int64_t lc = ctx.size(1);
    const Tensor e = r.lin(st, pre + "norm1.linear"), ec = r.lin(st, pre + "norm1_context.linear");
    const Tensor h = modulate(ln(x), e, 0, 1), hc = modulate(ln(ctx), ec, 0, 1);
    // q, k, v as [B, L+N, D] in [text, image] order, q/k LayerNormed per head, then split heads.
    auto qk = [&](const std::string& txt, const std::string& img) {
      const Tensor t = ln(r.lin(hc, pre + txt).reshape({b, lc, nh, c.head_dim})).reshape({b, lc, d});
      const Tensor i = ln(r.lin(h, pre + img).reshape({b, n, nh, c.head_dim})).reshape({b, n, d});
      return heads(cat1(t, i), nh);
    };
    const Tensor v = heads(cat1(r.lin(hc, pre + "attn.add_v_proj"), r.lin(h, pre + "attn.to_v")), nh);
    const Tensor q = qk("attn.add_q_proj", "attn.to_q"), k = qk("attn.add_k_proj", "attn.to_k");
    const Tensor a = kernels::attention_reference(q, k, v, nullptr, scale);  // [B, L+N, D]
    const Tensor a_img = r.lin(rows(a, lc, lc + n), pre + "attn.to_out.0");
    const Tensor a_txt = r.lin(rows(a, 0, lc), pre + "attn.to_add_out");
    x = tail(r, x, a_img, e, pre + "ff.");
    ctx = tail(r, ctx, a_txt, ec, pre + "ff_context.");
  }

  if (c.num_single_dit_layers > 0) {
    const int64_t lc = ctx.size(1);
    Tensor s = cat1(ctx, x);
    for (int64_t l = 0; l < c.num_single_dit_layers; ++l) {
      const std::string pre = "single_transformer_blocks." + std::to_string(l) + ".";
      const int64_t len = s.size(1);
      const Tensor e = r.lin(st, pre + "norm1.linear");
      const Tensor h = modulate(ln(s), e, 0, 1);
      auto proj = [&](const std::string& name, bool norm) {
        Tensor t = r.lin(h, pre + name);
        if (norm) t = ln(t.reshape({b, len, nh, c.head_dim})).reshape({b, len, d});
        return heads(t, nh);
      };
      const Tensor a = kernels::attention_reference(proj("attn.to_q", true), proj("attn.to_k", true),
                                                    proj("attn.to_v", false), nullptr, scale);
      s = tail(r, s, r.lin(a, pre + "attn.to_out.0"), e, pre + "ff.");
    }
    x = rows(s, lc, lc + n);
  }

  // AuraFlowPreFinalBlock: chunks (scale, shift), no LayerNorm.
  const Tensor y = r.lin(modulate(x, r.lin(st, "norm_out.linear"), 1, 0), "proj_out");  // [B, N, p*p*C]
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

std::vector<std::pair<std::string, Tensor>> random_checkpoint(const models::AuraFlowConfig& c, uint32_t seed) {
  std::vector<std::pair<std::string, Tensor>> t;
  auto add = [&](const std::string& name, const Shape& shape, float scale) {
    t.emplace_back(name, random_tensor(shape, seed++, -scale, scale));
  };
  auto linear = [&](const std::string& name, int64_t in, int64_t out, bool bias) {
    const float s = 1.0f / std::sqrt(static_cast<float>(in));
    add(name + ".weight", {out, in}, s);
    if (bias) add(name + ".bias", {out}, s);
  };
  const int64_t d = c.inner_dim, p = c.patch_size;
  // int(2 * 4d / 3) rounded up to a multiple of 256 (find_multiple).
  const int64_t f = (8 * d / 3 + 255) / 256 * 256;
  auto feed_forward = [&](const std::string& pre) {
    linear(pre + ".linear_1", d, f, false);
    linear(pre + ".linear_2", d, f, false);
    linear(pre + ".out_projection", f, d, false);
  };
  linear("pos_embed.proj", c.in_channels * p * p, d, true);
  add("pos_embed.pos_embed", {1, c.pos_embed_max_size, d}, 1.0f);
  add("register_tokens", {1, 8, d}, 1.0f);
  linear("time_step_proj.linear_1", 256, d, true);
  linear("time_step_proj.linear_2", d, d, true);
  linear("context_embedder", c.joint_attention_dim, d, false);
  for (int64_t i = 0; i < c.num_mmdit_layers; ++i) {
    const std::string pre = "joint_transformer_blocks." + std::to_string(i);
    linear(pre + ".norm1.linear", d, 6 * d, false);
    linear(pre + ".norm1_context.linear", d, 6 * d, false);
    for (const char* n : {"to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"})
      linear(pre + ".attn." + n, d, d, false);
    feed_forward(pre + ".ff");
    feed_forward(pre + ".ff_context");
  }
  for (int64_t i = 0; i < c.num_single_dit_layers; ++i) {
    const std::string pre = "single_transformer_blocks." + std::to_string(i);
    linear(pre + ".norm1.linear", d, 6 * d, false);
    for (const char* n : {"to_q", "to_k", "to_v", "to_out.0"}) linear(pre + ".attn." + n, d, d, false);
    feed_forward(pre + ".ff");
  }
  linear("norm_out.linear", d, 2 * d, false);
  linear("proj_out", d, p * p * c.out_channels, false);
  return t;
}

}  // namespace qdit::testing::auraflow
