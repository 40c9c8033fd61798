#include "qdit/runtime/activation_estimate.h"

#include <algorithm>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/kernels/attention.h"

namespace qdit::runtime {

namespace {

constexpr double kF32 = 4.0;

// A byte counter replaying a forward pass: alloc/free in the model's order, peak = highest live sum.
class Live {
 public:
  explicit Live(const ActivationContext& ctx) : gemm_in_(ctx.gemm_input_bytes), bf16_(ctx.compute == DType::BF16) {}
  double alloc(double bytes) {
    cur_ += bytes;
    peak_ = std::max(peak_, cur_);
    return bytes;
  }
  void free(double bytes) { cur_ -= bytes; }
  template <typename... T>
  void free(double a, T... rest) {
    free(a);
    free(rest...);
  }
  // y[m, n] = x[m, k] W^T: the input workspace lives during the call, the output after it.
  double gemm(double m, double k, double n) {
    const double ws = alloc(m * k * gemm_in_);
    const double y = alloc(m * n * kF32);
    free(ws);
    return y;
  }
  // forward_into an existing tensor (residual fused): only the workspace.
  void gemm_into(double m, double k) { free(alloc(m * k * gemm_in_)); }
  // Fused attention of `heads` heads per batch item, q [sq, d] and k, v [skv, d] (f32): the f32
  // output, and while it is written the kernel's scratch (per-thread tiles, bf16 copies where
  // it cannot round while packing); scores are never materialised.
  double attention(double batch, double heads, double sq, double skv, double d, bool round = true) {
    const double out = alloc(batch * sq * heads * d * kF32);
    free(alloc(static_cast<double>(kernels::attention_scratch_bytes(
        static_cast<int64_t>(batch * heads), static_cast<int64_t>(sq), static_cast<int64_t>(skv),
        static_cast<int64_t>(d), DType::F32, bf16_ && round))));
    return out;
  }
  // A DiT's output: the final norm of x [rows, width] (x freed), proj_out to `out` columns, and
  // with `unpatchify` the unpatchified copy of that projection.
  void output_projection(double x, double rows, double width, double out, bool unpatchify) {
    const double normed = alloc(rows * width * 4.0);
    free(x);
    const double y = gemm(rows, width, out);
    free(normed);
    if (unpatchify) alloc(y);
  }
  size_t peak() const { return static_cast<size_t>(peak_); }

 private:
  double cur_ = 0, peak_ = 0;
  double gemm_in_;
  bool bf16_;
};

int64_t get(const io::JsonConfig& c, const char* key, int64_t def) { return c.get_or<int64_t>(key, def); }

// ---- DiTs. B = batch (both CFG halves), N image tokens, L text tokens, D width.

size_t pixart(const io::JsonConfig& c, double B, double N, double L, const ActivationContext& ctx) {
  Live m(ctx);
  const double H = get(c, "num_attention_heads", 16), hd = get(c, "attention_head_dim", 72), D = H * hd, F = 4 * D;
  const double p = get(c, "patch_size", 2), cin = get(c, "in_channels", 4);
  const double cout = c.raw().contains("out_channels") && c.raw()["out_channels"].is_null() ? cin
                                                                                             : get(c, "out_channels", 8);
  const double cap = get(c, "caption_channels", 0), cross = cap > 0 ? D : get(c, "cross_attention_dim", 1152);
  const double Bn = B * N, Bl = B * L;
  const double patches = m.alloc(Bn * cin * p * p * kF32);
  const double x = m.gemm(Bn, cin * p * p, D);
  m.free(patches);
  m.alloc(N * D * kF32);  // sin-cos table, cached by the model
  if (cap > 0) {  // caption projection: its output is held for the whole forward
    const double c1 = m.gemm(Bl, cap, D);
    m.gemm(Bl, D, D);
    m.free(c1);
  }
  m.alloc(Bl * kF32);  // mask bias
  {
    const double mod = m.alloc(B * 6 * D * kF32);
    double h = m.alloc(Bn * D * kF32);
    double q = m.gemm(Bn, D, D), k = m.gemm(Bn, D, D), v = m.gemm(Bn, D, D);
    double a = m.attention(B, H, N, N, hd);
    m.free(q, k, v);
    m.free(m.gemm(Bn, D, D), a, h);
    q = m.gemm(Bn, D, D), k = m.gemm(Bl, cross, D), v = m.gemm(Bl, cross, D);
    a = m.attention(B, H, N, L, hd);
    m.free(q, k, v);
    m.gemm_into(Bn, D);
    m.free(a);
    h = m.alloc(Bn * D * kF32);
    const double f1 = m.gemm(Bn, D, F), f2 = m.gemm(Bn, F, D);
    m.free(f1, f2, h, mod);
  }
  m.output_projection(x, Bn, D, p * p * cout, true);
  return m.peak();
}

size_t sd3(const io::JsonConfig& c, double B, double N, double L, const ActivationContext& ctx) {
  Live m(ctx);
  const double H = get(c, "num_attention_heads", 18), hd = get(c, "attention_head_dim", 64), D = H * hd, F = 4 * D;
  const double p = get(c, "patch_size", 2), cin = get(c, "in_channels", 16), cout = get(c, "out_channels", 16);
  const double joint = get(c, "joint_attention_dim", 4096);
  const double Bn = B * N, Bl = B * L, S = Bn + Bl;
  const double patches = m.alloc(Bn * cin * p * p * kF32);
  const double x = m.gemm(Bn, cin * p * p, D);
  m.free(patches);
  m.alloc(N * D * kF32);  // cropped position table
  const double context = m.gemm(Bl, joint, D);
  {
    const double h = m.alloc(Bn * D * kF32), hc = m.alloc(Bl * D * kF32);
    double qkv = 0;
    for (int i = 0; i < 3; ++i) {
      const double a = m.gemm(Bn, D, D), b = m.gemm(Bl, D, D);
      qkv += m.alloc(S * D * kF32);
      m.free(a, b);
    }
    const double a = m.attention(B, H, S / B, S / B, hd);
    for (double rows : {Bn, Bl}) {
      const double part = m.alloc(rows * D * kF32);
      m.free(m.gemm(rows, D, D), part);
    }
    m.free(a, qkv, h, hc);
    for (double rows : {Bn, Bl}) {
      const double hh = m.alloc(rows * D * kF32);
      const double f1 = m.gemm(rows, D, F), f2 = m.gemm(rows, F, D);
      m.free(f1, f2, hh);
    }
  }
  m.free(context);
  m.output_projection(x, Bn, D, p * p * cout, true);
  return m.peak();
}

size_t flux(const io::JsonConfig& c, double B, double N, double L, const ActivationContext& ctx) {
  Live m(ctx);
  const double H = get(c, "num_attention_heads", 24), hd = get(c, "attention_head_dim", 128), D = H * hd, F = 4 * D;
  const double cin = get(c, "in_channels", 64), joint = get(c, "joint_attention_dim", 4096);
  const double Bn = B * N, Bl = B * L, S = Bn + Bl;
  const bool singles = get(c, "num_single_layers", 38) > 0, doubles = get(c, "num_layers", 19) > 0;
  m.alloc(2 * S / B * (hd / 2) * kF32);  // rotary cos/sin tables: [L + N, head_dim / 2] each
  double x = m.gemm(Bn, cin, D);
  double context = m.gemm(Bl, joint, D);
  // q/k: allocated for the whole (joint) sequence first; each projection is RMS-normalised and
  // rotated straight into its rows (kernels::rms_norm_rope_into) once the three projections ran;
  // the raw q/k go then. Returns v (the GEMM output).
  auto project = [&](double rows) {
    const double h = m.alloc(rows * D * kF32);
    const double q = m.gemm(rows, D, D), k = m.gemm(rows, D, D), v = m.gemm(rows, D, D);
    m.free(q, k, h);
    return v;
  };
  if (doubles) {
    // bf16: the joint kernel reads the streams' v in place and writes one output per stream, which
    // the output projections read directly; otherwise v is concatenated and a's rows copied.
    const bool parts = ctx.compute == DType::BF16;
    const double qk = m.alloc(2 * S * D * kF32);
    const double vi = project(Bn), vt = project(Bl);
    const double v = parts ? 0 : m.alloc(S * D * kF32);  // cat([v_text, v_image])
    if (!parts) m.free(vi, vt);
    const double a = m.attention(B, H, S / B, S / B, hd);
    m.free(qk, v);
    if (parts) m.free(vi, vt);
    for (double rows : {Bn, Bl}) {
      const double part = parts ? 0 : m.alloc(rows * D * kF32);
      m.free(m.gemm(rows, D, D), part);
    }
    m.free(a);
    for (double rows : {Bn, Bl}) {
      const double h = m.alloc(rows * D * kF32);
      const double f1 = m.gemm(rows, D, F), f2 = m.gemm(rows, F, D);
      m.free(f1, f2, h);
    }
  }
  if (singles) {
    const double s = m.alloc(S * D * kF32);
    m.free(x, context);
    x = context = 0;
    const double h = m.alloc(S * D * kF32);
    const double qk = m.alloc(2 * S * D * kF32);
    const double q = m.gemm(S, D, D), k = m.gemm(S, D, D), v = m.gemm(S, D, D);
    m.free(q, k);
    const double a = m.attention(B, H, S / B, S / B, hd);
    m.free(qk, v);
    const double mlp = m.gemm(S, D, F);
    const double cat = m.alloc(S * (D + F) * kF32);
    m.free(mlp);
    m.free(m.gemm(S, D + F, D), cat, a, h);
    x = m.alloc(Bn * D * kF32);
    m.free(s);
  }
  m.free(context);
  m.output_projection(x, Bn, D, cin, false);
  return m.peak();
}

size_t auraflow(const io::JsonConfig& c, double B, double N, double L, const ActivationContext& ctx) {
  Live m(ctx);
  const double H = get(c, "num_attention_heads", 12), hd = get(c, "attention_head_dim", 256), D = H * hd;
  // AuraFlowFeedForward: int(2 * 4D / 3) rounded up to a multiple of 256.
  const double F = std::ceil(static_cast<int64_t>(2 * 4 * D / 3) / 256.0) * 256;
  const double p = get(c, "patch_size", 2), cin = get(c, "in_channels", 4), cout = get(c, "out_channels", 4);
  const double joint = get(c, "joint_attention_dim", 2048);
  const double Bn = B * N, Lt = B * (L + 8), S = Bn + Lt;
  const bool singles = get(c, "num_single_dit_layers", 32) > 0, joints = get(c, "num_mmdit_layers", 4) > 0;
  const double patches = m.alloc(Bn * cin * p * p * kF32);
  double x = m.gemm(Bn, cin * p * p, D);
  m.free(patches);
  m.alloc(N * D * kF32);  // cropped position table
  double context;
  {
    const double regs = m.alloc(B * 8 * D * kF32), ce = m.gemm(B * L, joint, D);
    context = m.alloc(Lt * D * kF32);
    m.free(regs, ce);
  }
  auto tail = [&](double rows) {  // attention_tail: clone, norm, SwiGLU-style FF
    const double t = m.alloc(rows * D * kF32), h = m.alloc(rows * D * kF32);
    m.free(t);
    const double g = m.gemm(rows, D, F), g2 = m.gemm(rows, D, F);
    m.free(g2);
    m.free(m.gemm(rows, F, D), g, h);
  };
  if (joints) {
    const double h = m.alloc(Bn * D * kF32), hc = m.alloc(Lt * D * kF32);
    double qkv = 0;
    for (int i = 0; i < 3; ++i) {
      const bool norm = i < 2;
      const double a = m.gemm(Lt, D, D), an = norm ? m.alloc(Lt * D * kF32) : 0;
      if (norm) m.free(a);
      const double b = m.gemm(Bn, D, D), bn = norm ? m.alloc(Bn * D * kF32) : 0;
      if (norm) m.free(b);
      qkv += m.alloc(S * D * kF32);
      m.free(norm ? an : a, norm ? bn : b);
    }
    const double a = m.attention(B, H, S / B, S / B, hd);
    m.free(h, hc, qkv);
    const double pi = m.alloc(Bn * D * kF32), oi = m.gemm(Bn, D, D);
    m.free(pi);
    const double pt = m.alloc(Lt * D * kF32), ot = m.gemm(Lt, D, D);
    m.free(pt, a);
    tail(Bn);
    tail(Lt);
    m.free(oi, ot);
  }
  if (singles) {
    const double comb = m.alloc(S * D * kF32);
    m.free(context, x);
    context = x = 0;
    const double h = m.alloc(S * D * kF32);
    double qkv = 0;
    for (int i = 0; i < 2; ++i) {
      const double raw = m.gemm(S, D, D);
      qkv += m.alloc(S * D * kF32);
      m.free(raw);
    }
    qkv += m.gemm(S, D, D);
    const double a = m.attention(B, H, S / B, S / B, hd);
    m.free(qkv);
    const double o = m.gemm(S, D, D);
    m.free(a, h);
    tail(S);
    m.free(o);
    x = m.alloc(Bn * D * kF32);
    m.free(comb);
  }
  m.free(context);
  m.output_projection(x, Bn, D, p * p * cout, true);
  return m.peak();
}

// ---- Text encoders: one prompt [1, L].

size_t t5(const io::JsonConfig& c, double L, const ActivationContext& ctx) {
  Live m(ctx);
  const double D = get(c, "d_model", 512), H = get(c, "num_heads", 8), inner = H * get(c, "d_kv", 64);
  const double F = get(c, "d_ff", 2048);
  const std::string proj = c.get_or<std::string>("feed_forward_proj", "relu");
  const bool gated = c.get_or<bool>("is_gated_act", proj.rfind("gated-", 0) == 0);
  const double x = m.alloc(L * D * kF32);
  m.alloc(H * L * L * kF32);  // additive position bias + mask
  const double h = m.alloc(L * D * kF32);
  const double q = m.gemm(L, D, inner), k = m.gemm(L, D, inner), v = m.gemm(L, D, inner);
  const double a = m.attention(1, H, L, L, get(c, "d_kv", 64));
  m.free(q, k, v);
  m.gemm_into(L, inner);
  const double h2 = m.alloc(L * D * kF32);
  m.free(h);
  const double g = m.gemm(L, D, F);
  if (gated) m.free(m.gemm(L, D, F));
  m.gemm_into(L, F);
  m.free(g, h2, a);
  m.alloc(L * D * kF32);  // last_hidden_state
  (void)x;
  return m.peak();
}

size_t clip(const io::JsonConfig& c, double L, bool hidden_states, const ActivationContext& ctx) {
  Live m(ctx);
  const double D = get(c, "hidden_size", 512), I = get(c, "intermediate_size", 2048);
  const double layers = get(c, "num_hidden_layers", 12);
  m.alloc(L * D * kF32);      // x
  m.alloc(L * L * kF32);      // causal + padding mask
  if (hidden_states) m.alloc((layers + 1) * L * D * kF32);
  const double h = m.alloc(L * D * kF32);
  const double q = m.gemm(L, D, D), k = m.gemm(L, D, D), v = m.gemm(L, D, D);
  const double H = get(c, "num_attention_heads", 8);
  const double a = m.attention(1, H, L, L, D / H);
  m.gemm_into(L, D);
  const double h2 = m.alloc(L * D * kF32);
  m.free(h);
  const double f = m.gemm(L, D, I);
  m.free(m.alloc(L * I * kF32));  // quick_gelu makes a new tensor
  m.gemm_into(L, I);
  m.free(f, h2, a, q, k, v);
  m.alloc(2 * L * D * kF32);  // final norm, pooled rows
  return m.peak();
}

// ---- VAE decoder.

size_t vae(const io::JsonConfig& c, double B, double lh, double lw) {
  ActivationContext f32;
  Live m(f32);
  std::vector<int64_t> blocks = c.get<std::vector<int64_t>>("block_out_channels");
  QDIT_CHECK(!blocks.empty(), "[plan] ", c.path(), ": block_out_channels is empty");
  const int64_t layers = get(c, "layers_per_block", 2) + 1;
  const double C = get(c, "latent_channels", 4);
  const bool post_quant = c.get_or<bool>("use_post_quant_conv", true);
  const bool attention = c.get_or<bool>("mid_block_add_attention", true);
  // oneDNN runs the convolutions in blocked layouts (nChw16c / nChw8c) when the channels allow:
  // the input is reordered into a scratch copy, the output computed in one and reordered back.
  auto blocked = [](double ch) { return static_cast<int64_t>(ch) % 8 == 0; };
  auto conv = [&](double in, double out, double hw) {
    const double y = m.alloc(B * out * hw * kF32);
    const double src = blocked(in) ? m.alloc(B * in * hw * kF32) : 0;
    const double dst = blocked(out) ? m.alloc(B * out * hw * kF32) : 0;
    m.free(src, dst);
    return y;
  };
  auto resnet = [&](double in, double out, double hw) {  // the caller holds x [in]
    const double n1 = m.alloc(B * in * hw * kF32);
    const double c1 = conv(in, out, hw);
    m.free(n1);
    const double n2 = m.alloc(B * out * hw * kF32);
    m.free(c1);
    const double c2 = conv(out, out, hw);
    m.free(n2);
    if (in != out) m.free(conv(in, out, hw));
    return c2;
  };
  double hw = lh * lw;
  double ch = static_cast<double>(blocks.back());
  m.alloc(B * C * hw * kF32);  // z = latents / scaling_factor (the pipeline's copy)
  double z = post_quant ? conv(C, C, hw) : 0;
  double h = conv(C, ch, hw);
  m.free(z);
  auto step = [&](double next) {  // h = f(h): the old h is released after the new one exists
    m.free(h);
    h = next;
  };
  step(resnet(ch, ch, hw));
  if (attention) {
    const double n = m.alloc(B * ch * hw * kF32), t = m.alloc(B * ch * hw * kF32);
    m.free(n);
    const double q = m.gemm(B * hw, ch, ch), k = m.gemm(B * hw, ch, ch), v = m.gemm(B * hw, ch, ch);
    m.free(t);
    const double o = m.attention(B, 1, hw, hw, ch, false);
    m.free(q, k, v);
    const double o2 = m.gemm(B * hw, ch, ch);
    m.free(o);
    const double y = m.alloc(B * ch * hw * kF32);
    m.free(o2);
    step(y);
  }
  step(resnet(ch, ch, hw));
  for (size_t i = 0; i < blocks.size(); ++i) {
    const double out = static_cast<double>(blocks[blocks.size() - 1 - i]);
    for (int64_t j = 0; j < layers; ++j) {
      step(resnet(ch, out, hw));
      ch = out;
    }
    if (i + 1 < blocks.size()) {
      const double up = m.alloc(B * ch * 4 * hw * kF32);
      hw *= 4;
      const double y = conv(ch, ch, hw);
      m.free(up);
      step(y);
    }
  }
  step(m.alloc(B * ch * hw * kF32));  // conv_norm_out
  const double img = conv(ch, 3, hw);
  m.free(h);
  m.alloc(img);  // postprocessed image
  return m.peak();
}

}  // namespace

size_t transformer_activation_peak(const io::ModelFolder& f, int64_t batch, int64_t lh, int64_t lw, int64_t text_len,
                                   const ActivationContext& ctx) {
  const io::JsonConfig& c = f.config();
  const std::string& cls = f.class_name();
  const double p = static_cast<double>(get(c, "patch_size", cls == "FluxTransformer2DModel" ? 1 : 2));
  const double n = cls == "FluxTransformer2DModel" ? (lh / 2) * (lw / 2) : (lh / p) * (lw / p);
  const double b = static_cast<double>(batch), l = static_cast<double>(text_len);
  if (cls == "PixArtTransformer2DModel") return pixart(c, b, n, l, ctx);
  if (cls == "SD3Transformer2DModel") return sd3(c, b, n, l, ctx);
  if (cls == "FluxTransformer2DModel") return flux(c, b, n, l, ctx);
  if (cls == "AuraFlowTransformer2DModel") return auraflow(c, b, n, l, ctx);
  fail("[plan] no activation model for transformer class '", cls, "' (", f.path(), ")");
}

size_t text_encoder_activation_peak(const io::ModelFolder& f, int64_t seq, bool hidden_states,
                                    const ActivationContext& ctx) {
  const std::string& cls = f.class_name();
  if (cls == "T5EncoderModel" || cls == "UMT5EncoderModel") return t5(f.config(), static_cast<double>(seq), ctx);
  if (cls == "CLIPTextModel" || cls == "CLIPTextModelWithProjection")
    return clip(f.config(), static_cast<double>(seq), hidden_states, ctx);
  fail("[plan] no activation model for text encoder class '", cls, "' (", f.path(), ")");
}

size_t vae_decode_activation_peak(const io::ModelFolder& f, int64_t batch, int64_t lh, int64_t lw) {
  QDIT_CHECK(f.class_name() == "AutoencoderKL", "[plan] no activation model for VAE class '", f.class_name(), "'");
  return vae(f.config(), static_cast<double>(batch), static_cast<double>(lh), static_cast<double>(lw));
}

}  // namespace qdit::runtime
