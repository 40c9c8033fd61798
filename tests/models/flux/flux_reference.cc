#include "flux_reference.h"

#include <cmath>

#include "qdit/kernels/attention.h"
#include "qdit/kernels/gemm.h"

namespace qdit::testing::flux {
namespace {

using kernels::Activation;

struct Ref {
  const io::WeightSource& w;
  Tensor lin(const Tensor& x, const std::string& name, Activation act = Activation::None) const {
    return kernels::linear_reference(x, w.tensor(name + ".weight"), w.tensor(name + ".bias"), act);
  }
  std::vector<float> vec(const std::string& name) const { return w.tensor(name).to_vector(); }
};

float silu(float v) { return v / (1.0f + std::exp(-v)); }

// Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0) on 1000 * t: cat[cos, sin], f32.
Tensor time_proj(const std::vector<float>& t) {
  const int64_t b = static_cast<int64_t>(t.size()), half = 128;
  Tensor out = Tensor::empty({b, 2 * half}, DType::F32);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t k = 0; k < half; ++k) {
      const float freq = std::exp(-std::log(10000.0f) * static_cast<float>(k) / static_cast<float>(half));
      const float arg = (t[static_cast<size_t>(i)] * 1000.0f) * freq;
      out.data<float>()[i * 2 * half + k] = std::cos(arg);
      out.data<float>()[i * 2 * half + half + k] = std::sin(arg);
    }
  return out;
}

// LayerNorm(no affine, eps 1e-6)(x[B,S,D]) * (1 + scale) + shift; chunks shift_i / scale_i of emb [B, K*D].
Tensor ln_mod(const Tensor& x, const Tensor& emb, int shift_i, int scale_i) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), k = emb.size(1);
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  const float* xp = x.data<float>();
  const float* ep = emb.data<float>();
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
        y.data<float>()[(i * s + j) * d + c] = static_cast<float>((r[c] - mean) * inv * (1.0 + scale) + shift);
      }
    }
  return y;
}

// x += gate(chunk g of emb) * y.
void gated_add(Tensor& x, const Tensor& y, const Tensor& emb, int g) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), k = emb.size(1);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < s; ++j)
      for (int64_t c = 0; c < d; ++c)
        x.data<float>()[(i * s + j) * d + c] +=
            emb.data<float>()[i * k + g * d + c] * y.data<float>()[(i * s + j) * d + c];
}

// cat([a, b], dim) for 3-D tensors, dim 1 or 2.
Tensor cat(const Tensor& a, const Tensor& b, int dim) {
  const int64_t n = a.size(0);
  const int64_t s = dim == 1 ? a.size(1) + b.size(1) : a.size(1), d = dim == 1 ? a.size(2) : a.size(2) + b.size(2);
  Tensor y = Tensor::empty({n, s, d}, DType::F32);
  const std::vector<float> av = a.to_vector(), bv = b.to_vector();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < s; ++j)
      for (int64_t c = 0; c < d; ++c) {
        float v;
        if (dim == 1)
          v = j < a.size(1) ? av[(i * a.size(1) + j) * d + c] : bv[(i * b.size(1) + j - a.size(1)) * d + c];
        else
          v = c < a.size(2) ? av[(i * s + j) * a.size(2) + c] : bv[(i * s + j) * b.size(2) + c - a.size(2)];
        y.data<float>()[(i * s + j) * d + c] = v;
      }
  return y;
}

// Attention.norm_q etc.: RMSNorm over each head's Dh channels of x [B, S, H*Dh], weight [Dh].
Tensor rms_heads(const Tensor& x, const std::vector<float>& w, int64_t heads) {
  Tensor y = x.clone();
  const int64_t dh = x.size(2) / heads, rows = x.numel() / dh;
  float* p = y.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < dh; ++c) ss += static_cast<double>(p[r * dh + c]) * p[r * dh + c];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / dh + 1e-6));
    for (int64_t c = 0; c < dh; ++c) p[r * dh + c] = p[r * dh + c] * inv * w[static_cast<size_t>(c)];
  }
  return y;
}

// Rotates interleaved pairs of every head of x [B, S, H*Dh] with each row's own ids [B, S, n].
Tensor rope(const Tensor& x, const Tensor& ids, const std::vector<int64_t>& axes, int64_t heads) {
  Tensor y = x.clone();
  const int64_t b = x.size(0), s = x.size(1), dh = x.size(2) / heads;
  for (int64_t i = 0; i < b; ++i) {
    const auto [c, sn] = reference_rope_table(ids.select(0, i), axes);
    for (int64_t j = 0; j < s; ++j)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t q = 0; q < dh / 2; ++q) {
          float* p = y.data<float>() + (i * s + j) * x.size(2) + h * dh + 2 * q;
          const float cv = c.data<float>()[j * dh / 2 + q], sv = sn.data<float>()[j * dh / 2 + q];
          const float x0 = p[0], x1 = p[1];
          p[0] = cv * x0 - sv * x1;
          p[1] = sv * x0 + cv * x1;
        }
  }
  return y;
}

Tensor heads_view(const Tensor& x, int64_t h) {  // [B, S, H*D] -> [B, H, S, D]
  return x.reshape({x.size(0), x.size(1), h, x.size(2) / h}).permute({0, 2, 1, 3}).contiguous();
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.size(2) / heads));
  return kernels::attention_reference(heads_view(q, heads), heads_view(k, heads), heads_view(v, heads), nullptr,
                                      scale);  // [B, S, H*D]
}

Tensor rows(const Tensor& x, int64_t from, int64_t to) { return x.slice(1, from, to).contiguous(); }

}  // namespace

std::pair<Tensor, Tensor> reference_rope_table(const Tensor& ids, const std::vector<int64_t>& axes) {
  int64_t half = 0;
  for (int64_t d : axes) half += d / 2;
  const int64_t s = ids.size(0);
  const std::vector<float> id = ids.to_vector();
  Tensor c = Tensor::empty({s, half}, DType::F32), sn = Tensor::empty({s, half}, DType::F32);
  for (int64_t j = 0; j < s; ++j) {
    int64_t col = 0;
    for (size_t a = 0; a < axes.size(); ++a)
      for (int64_t q = 0; q < axes[a] / 2; ++q, ++col) {
        const double omega = 1.0 / std::pow(10000.0, (2.0 * static_cast<double>(q)) / static_cast<double>(axes[a]));
        const double angle = static_cast<double>(id[static_cast<size_t>(j) * axes.size() + a]) * omega;
        c.data<float>()[j * half + col] = static_cast<float>(std::cos(angle));
        sn.data<float>()[j * half + col] = static_cast<float>(std::sin(angle));
      }
  }
  return {c, sn};
}

Tensor reference_forward(const io::WeightSource& w, const models::FluxConfig& c, const RefInputs& in) {
  const Ref r{w};
  const int64_t h = c.heads, l = in.encoder_hidden_states.size(1), n = in.latents.size(1);
  const Tensor ids = cat(in.txt_ids, in.img_ids, 1);

  // temb = TimestepEmbedding(t) [+ guidance embedding] + text projection; SiLU for every AdaLN.
  Tensor temb = r.lin(r.lin(time_proj(in.timestep), "time_text_embed.timestep_embedder.linear_1", Activation::Silu),
                      "time_text_embed.timestep_embedder.linear_2");
  if (!in.guidance.empty()) {
    const Tensor g =
        r.lin(r.lin(time_proj(in.guidance), "time_text_embed.guidance_embedder.linear_1", Activation::Silu),
              "time_text_embed.guidance_embedder.linear_2");
    for (int64_t i = 0; i < temb.numel(); ++i) temb.data<float>()[i] += g.data<float>()[i];
  }
  const Tensor pe = r.lin(r.lin(in.pooled, "time_text_embed.text_embedder.linear_1", Activation::Silu),
                          "time_text_embed.text_embedder.linear_2");
  Tensor st = Tensor::empty(temb.shape(), DType::F32);
  for (int64_t i = 0; i < temb.numel(); ++i) st.data<float>()[i] = silu(temb.data<float>()[i] + pe.data<float>()[i]);

  Tensor x = r.lin(in.latents, "x_embedder");
  Tensor ctx = r.lin(in.encoder_hidden_states, "context_embedder");
  for (int64_t b = 0; b < c.num_layers; ++b) {
    const std::string p = "transformer_blocks." + std::to_string(b) + ".", a = p + "attn.";
    const Tensor e = r.lin(st, p + "norm1.linear"), ec = r.lin(st, p + "norm1_context.linear");
    const Tensor hx = ln_mod(x, e, 0, 1), hc = ln_mod(ctx, ec, 0, 1);
    // [text, image] order for q, k, v and the ids.
    const Tensor q = cat(rms_heads(r.lin(hc, a + "add_q_proj"), r.vec(a + "norm_added_q.weight"), h),
                         rms_heads(r.lin(hx, a + "to_q"), r.vec(a + "norm_q.weight"), h), 1);
    const Tensor k = cat(rms_heads(r.lin(hc, a + "add_k_proj"), r.vec(a + "norm_added_k.weight"), h),
                         rms_heads(r.lin(hx, a + "to_k"), r.vec(a + "norm_k.weight"), h), 1);
    const Tensor v = cat(r.lin(hc, a + "add_v_proj"), r.lin(hx, a + "to_v"), 1);
    const Tensor o = attention(rope(q, ids, c.axes_dims_rope, h), rope(k, ids, c.axes_dims_rope, h), v, h);
    gated_add(x, r.lin(rows(o, l, l + n), a + "to_out.0"), e, 2);
    gated_add(x, r.lin(r.lin(ln_mod(x, e, 3, 4), p + "ff.net.0.proj", Activation::GeluTanh), p + "ff.net.2"), e, 5);
    gated_add(ctx, r.lin(rows(o, 0, l), a + "to_add_out"), ec, 2);
    gated_add(
        ctx,
        r.lin(r.lin(ln_mod(ctx, ec, 3, 4), p + "ff_context.net.0.proj", Activation::GeluTanh), p + "ff_context.net.2"),
        ec, 5);
  }
  Tensor s = cat(ctx, x, 1);
  for (int64_t b = 0; b < c.num_single_layers; ++b) {
    const std::string p = "single_transformer_blocks." + std::to_string(b) + ".", a = p + "attn.";
    const Tensor e = r.lin(st, p + "norm.linear");  // shift, scale, gate
    const Tensor hs = ln_mod(s, e, 0, 1);
    const Tensor mlp = r.lin(hs, p + "proj_mlp", Activation::GeluTanh);
    const Tensor q = rope(rms_heads(r.lin(hs, a + "to_q"), r.vec(a + "norm_q.weight"), h), ids, c.axes_dims_rope, h);
    const Tensor k = rope(rms_heads(r.lin(hs, a + "to_k"), r.vec(a + "norm_k.weight"), h), ids, c.axes_dims_rope, h);
    const Tensor o = attention(q, k, r.lin(hs, a + "to_v"), h);
    gated_add(s, r.lin(cat(o, mlp, 2), p + "proj_out"), e, 2);
  }
  // AdaLayerNormContinuous: (scale, shift).
  return r.lin(ln_mod(rows(s, l, l + n), r.lin(st, "norm_out.linear"), 1, 0), "proj_out");
}

std::vector<std::pair<std::string, Shape>> checkpoint_layout(const models::FluxConfig& c) {
  const int64_t d = c.inner_dim, dh = c.head_dim;
  std::vector<std::pair<std::string, Shape>> t;
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    t.push_back({name + ".weight", {out, in}});
    t.push_back({name + ".bias", {out}});
  };
  linear("x_embedder", c.in_channels, d);
  linear("context_embedder", c.joint_attention_dim, d);
  linear("time_text_embed.timestep_embedder.linear_1", 256, d);
  linear("time_text_embed.timestep_embedder.linear_2", d, d);
  if (c.guidance_embeds) {
    linear("time_text_embed.guidance_embedder.linear_1", 256, d);
    linear("time_text_embed.guidance_embedder.linear_2", d, d);
  }
  linear("time_text_embed.text_embedder.linear_1", c.pooled_projection_dim, d);
  linear("time_text_embed.text_embedder.linear_2", d, d);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "transformer_blocks." + std::to_string(i) + ".";
    linear(p + "norm1.linear", d, 6 * d);
    linear(p + "norm1_context.linear", d, 6 * d);
    for (const char* m : {"to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"})
      linear(p + "attn." + m, d, d);
    for (const char* m : {"norm_q", "norm_k", "norm_added_q", "norm_added_k"})
      t.push_back({p + "attn." + m + ".weight", {dh}});
    linear(p + "ff.net.0.proj", d, 4 * d);
    linear(p + "ff.net.2", 4 * d, d);
    linear(p + "ff_context.net.0.proj", d, 4 * d);
    linear(p + "ff_context.net.2", 4 * d, d);
  }
  for (int64_t i = 0; i < c.num_single_layers; ++i) {
    const std::string p = "single_transformer_blocks." + std::to_string(i) + ".";
    linear(p + "norm.linear", d, 3 * d);
    for (const char* m : {"to_q", "to_k", "to_v"}) linear(p + "attn." + m, d, d);
    for (const char* m : {"norm_q", "norm_k"}) t.push_back({p + "attn." + m + ".weight", {dh}});
    linear(p + "proj_mlp", d, 4 * d);
    linear(p + "proj_out", 5 * d, d);
  }
  linear("norm_out.linear", d, 2 * d);
  linear("proj_out", d, c.patch_size * c.patch_size * c.in_channels);
  return t;
}

}  // namespace qdit::testing::flux
