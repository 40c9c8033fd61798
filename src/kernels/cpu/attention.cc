// attention(): argument checks, variant dispatch and threading; attention_reference().
#include "qdit/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/core/float_cast.h"
#include "qdit/core/parallel.h"
#include "qdit/core/profile.h"
#include "qdit/kernels/cpu/attention_cpu.h"
#include "qdit/kernels/cpu/isa.h"
#include "qdit/kernels/layout.h"

namespace qdit::kernels {
namespace {

struct Dims {
  int64_t b, h, sq, skv, d;
};

Dims check_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask) {
  const char* names[3] = {"q", "k", "v"};
  const Tensor* ts[3] = {&q, &k, &v};
  for (int i = 0; i < 3; ++i) {
    const Tensor& t = *ts[i];
    QDIT_CHECK(t.defined(), "[attention] ", names[i], " is undefined");
    QDIT_CHECK(t.dim() == 4, "[attention] ", names[i], " must be 4-D [B, H, S, D], got ", t.desc());
    QDIT_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, "[attention] ", names[i],
               " must be f32 or bf16, got ", t.desc());
    QDIT_CHECK(t.size(3) <= 1 || t.strides()[3] == 1, "[attention] ", names[i],
               " needs a contiguous last dim, got ", t.desc(), " with strides ", shape_str(t.strides()));
  }
  QDIT_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(),
             "[attention] q, k, v must share one dtype, got q ", q.desc(), ", k ", k.desc(), ", v ",
             v.desc());
  const Dims d{q.size(0), q.size(1), q.size(2), k.size(2), q.size(3)};
  QDIT_CHECK(k.size(0) == d.b && v.size(0) == d.b && k.size(1) == d.h && v.size(1) == d.h &&
                 k.size(3) == d.d && v.size(3) == d.d && v.size(2) == d.skv,
             "[attention] expected k and v [", d.b, ", ", d.h, ", Skv, ", d.d, "] matching q ",
             q.desc(), ", got k ", k.desc(), ", v ", v.desc());
  QDIT_CHECK(d.d >= 1, "[attention] head dim must be >= 1, got q ", q.desc());
  QDIT_CHECK(d.skv >= 1 || d.sq == 0 || d.b * d.h == 0,
             "[attention] k and v have no keys (Skv = 0): ", k.desc());
  if (mask) {
    const Shape full{d.b, d.h, d.sq, d.skv};
    QDIT_CHECK(mask->defined() && mask->dtype() == DType::F32 && mask->dim() == 4,
               "[attention] mask must be a 4-D f32 tensor broadcastable to ", shape_str(full), ", got ",
               mask->defined() ? mask->desc() : std::string("undefined"));
    for (int i = 0; i < 4; ++i) {
      QDIT_CHECK(mask->size(i) == full[i] || mask->size(i) == 1, "[attention] mask ", mask->desc(),
                 " does not broadcast to ", shape_str(full), " (dim ", i, ")");
    }
  }
  return d;
}

}  // namespace

namespace cpu {

void run_problem(AttentionProblem& p, const AttentionVariant& variant);

bool attention_isa_available(AttentionIsa isa) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (isa) {
    case AttentionIsa::Auto:
      return true;
    case AttentionIsa::Avx2:
    case AttentionIsa::Avx512Emulated:
      return avx2;
    case AttentionIsa::Avx512:
      return has_avx512_bf16();
    case AttentionIsa::Amx:
      return has_amx_bf16();
  }
  return false;
}

AttentionIsa best_attention_isa() {
  if (has_amx_bf16()) return AttentionIsa::Amx;
  if (has_avx512_bf16()) return AttentionIsa::Avx512;
  if (attention_isa_available(AttentionIsa::Avx2)) return AttentionIsa::Avx2;
  return AttentionIsa::Auto;
}

AttentionVariant variant_of(AttentionIsa isa) {
  return isa == AttentionIsa::Amx      ? attention_variant_amx()
         : isa == AttentionIsa::Avx512 ? attention_variant_avx512()
         : isa == AttentionIsa::Avx2   ? attention_variant_avx2()
                                       : attention_variant_avx512_emulated();
}

int64_t query_chunks(int64_t batch_heads, int64_t sq, int64_t threads) {
  return batch_heads % threads == 0 ? 1 : std::max<int64_t>(1, std::min<int64_t>(threads, sq / 16));
}

Tensor attention_with_isa(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                          float scale, Tensor* out, AttentionIsa isa, bool round_to_bf16) {
  const Dims dm = check_args(q, k, v, mask);
  round_to_bf16 = round_to_bf16 && q.dtype() == DType::F32;
  const Shape out_shape{dm.b, dm.sq, dm.h * dm.d};
  Tensor result;
  if (out) {
    QDIT_CHECK(out->defined() && (out->dtype() == DType::F32 || out->dtype() == DType::BF16) &&
                   out->shape() == out_shape && out->is_contiguous(),
               "[attention] out must be a contiguous f32 or bf16 ", shape_str(out_shape), ", got ",
               out->defined() ? out->desc() : std::string("undefined"));
    result = *out;
  } else {
    result = Tensor::empty(out_shape, DType::F32);
  }
  if (result.numel() == 0) return result;
  if (result.dtype() == DType::BF16 && (isa == AttentionIsa::Auto ? best_attention_isa() : isa) != AttentionIsa::Amx) {
    // Only the AMX variant writes bf16 itself: the f32 result, rounded.
    result.copy_from(attention_with_isa(q, k, v, mask, scale, nullptr, isa, round_to_bf16));
    return result;
  }

  if (isa == AttentionIsa::Auto) {
    isa = best_attention_isa();
    if (isa == AttentionIsa::Auto) {  // pre-AVX2 CPU: correct but slow
      if (round_to_bf16) {
        result.copy_from(attention_reference(q.to(DType::BF16), k.to(DType::BF16), v.to(DType::BF16), mask, scale));
      } else {
        result.copy_from(attention_reference(q, k, v, mask, scale));
      }
      return result;
    }
  }
  QDIT_CHECK(attention_isa_available(isa), "[attention] the requested kernel variant needs ",
             isa == AttentionIsa::Amx      ? "AMX-BF16 (enabled by the OS)"
             : isa == AttentionIsa::Avx512 ? "AVX-512 BF16"
                                           : "AVX2 + FMA",
             ", which this CPU lacks");
  const AttentionVariant variant = variant_of(isa);
  if (round_to_bf16 && !variant.rounds_f32) {  // this variant packs bf16 inputs only: round first
    return attention_with_isa(q.to(DType::BF16), k.to(DType::BF16), v.to(DType::BF16), mask, scale, &result, isa);
  }

  AttentionProblem p;
  p.q = q.raw_data();
  p.k = k.raw_data();
  p.v = v.raw_data();
  p.bf16 = q.dtype() == DType::BF16;
  p.round_to_bf16 = round_to_bf16;
  p.batch = dm.b;
  p.heads = dm.h;
  p.sq = dm.sq;
  p.skv = dm.skv;
  p.d = dm.d;
  for (int i = 0; i < 3; ++i) {
    p.q_stride[i] = q.strides()[i];
    p.k_stride[i] = k.strides()[i];
    p.v_stride[i] = v.strides()[i];
  }
  if (mask) {
    p.mask = mask->data<float>();
    for (int i = 0; i < 4; ++i) p.mask_stride[i] = mask->size(i) == 1 ? 0 : mask->strides()[i];
  }
  p.scale = scale;
  if (result.dtype() == DType::BF16) {
    p.out_bf16 = result.data<uint16_t>();
  } else {
    p.out = result.data<float>();
  }
  run_problem(p, variant);
  return result;
}

void run_problem(AttentionProblem& p, const AttentionVariant& variant) {
  // Heads are the unit of work (K/V are packed once per head); when they do not divide evenly
  // among the threads, each head's query rows are also split so that every thread gets the same.
  const int64_t threads = num_threads(), bh = p.batch * p.heads;
  p.q_chunks = query_chunks(bh, p.sq, threads);
  // One buffer with a slot per worker, allocated here: the same request every call, so the
  // denoising loop's RecyclingScope can hand it back (per-worker buffers would depend on timing).
  const size_t ws_bytes = (variant.workspace_bytes(p) + 63) / 64 * 64;
  const int64_t workers = std::min<int64_t>(threads, p.tasks());
  Tensor ws = Tensor::empty({static_cast<int64_t>(ws_bytes) * workers}, DType::U8, MemTag::Workspace);
  char* base = static_cast<char*>(ws.raw_data());
  parallel_for(p.tasks(), 1, [&](int64_t t0, int64_t t1) {
    // Run inline (nested or one thread), thread_index() may be an outer team's: any slot will do.
    const int64_t slot = std::min<int64_t>(thread_index(), workers - 1);
    variant.run(p, t0, t1, base + slot * ws_bytes);
  });
}

std::vector<Tensor> attention_parts_with_isa(const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                             const std::vector<Tensor>& v, float scale, AttentionIsa isa) {
  QDIT_CHECK(!q.empty() && q.size() <= 2 && !k.empty() && k.size() <= 2 && k.size() == v.size(),
             "[attention] expected one or two q parts and as many k as v parts (one or two), got ", q.size(), ", ",
             k.size(), ", ", v.size());
  for (size_t i = 0; i < k.size(); ++i) {
    check_args(q[0], k[i], v[i], nullptr);  // B, H, D agree; k and v parts of one length
    QDIT_CHECK(k[i].dtype() == q[0].dtype(), "[attention] parts must share one dtype");
  }
  for (size_t i = 1; i < q.size(); ++i) check_args(q[i], k[0], v[0], nullptr);
  auto total = [](const std::vector<Tensor>& t) {
    int64_t n = 0;
    for (const Tensor& x : t) n += x.size(2);
    return n;
  };
  const int64_t b = q[0].size(0), h = q[0].size(1), d = q[0].size(3);
  std::vector<Tensor> outs;
  for (const Tensor& x : q) outs.push_back(Tensor::empty({b, x.size(2), h * d}, DType::F32));
  if (isa == AttentionIsa::Auto) isa = has_amx_bf16() ? AttentionIsa::Amx : AttentionIsa::Auto;
  if (isa != AttentionIsa::Amx) {  // only the AMX kernel reads parts: concatenate, then split the output
    auto cat = [](const std::vector<Tensor>& t) { return t.size() == 1 ? t[0] : concat(t, 2); };
    const Tensor o = attention_with_isa(cat(q), cat(k), cat(v), nullptr, scale, nullptr, isa, /*round_to_bf16=*/true);
    int64_t s0 = 0;
    for (Tensor& out : outs) {
      out.copy_from(o.slice(1, s0, s0 + out.size(1)));
      s0 += out.size(1);
    }
    return outs;
  }
  QDIT_CHECK(attention_isa_available(isa), "[attention] the requested kernel variant needs AMX-BF16, which this CPU lacks");
  AttentionProblem p;
  auto set = [](const std::vector<Tensor>& t, const void*& b0, int64_t* st0, const void*& b1, int64_t* st1,
                int64_t& split) {
    b0 = t[0].raw_data();
    for (int i = 0; i < 3; ++i) st0[i] = t[0].strides()[i];
    if (t.size() == 2) {
      b1 = t[1].raw_data();
      for (int i = 0; i < 3; ++i) st1[i] = t[1].strides()[i];
      split = t[0].size(2);
    }
  };
  set(q, p.q, p.q_stride, p.q1, p.q1_stride, p.q_split);
  set(k, p.k, p.k_stride, p.k1, p.k1_stride, p.k_split);
  set(v, p.v, p.v_stride, p.v1, p.v1_stride, p.v_split);
  p.bf16 = q[0].dtype() == DType::BF16;
  p.round_to_bf16 = !p.bf16;
  p.batch = b;
  p.heads = h;
  p.sq = total(q);
  p.skv = total(k);
  p.d = d;
  p.scale = scale;
  p.out = outs[0].data<float>();
  if (outs.size() == 2) {
    p.out1 = outs[1].data<float>();
    p.out_split = q[0].size(2);
  }
  if (p.sq == 0) return outs;
  QDIT_CHECK(p.skv > 0, "[attention] k and v have no keys (Skv = 0)");
  run_problem(p, attention_variant_amx());
  return outs;
}

}  // namespace cpu

size_t attention_scratch_bytes(int64_t batch_heads, int64_t sq, int64_t skv, int64_t head_dim, DType stored,
                               bool round_to_bf16) {
  const cpu::AttentionIsa isa = cpu::best_attention_isa();
  if (batch_heads * sq == 0) return 0;
  const size_t elems = static_cast<size_t>(batch_heads * (sq + 2 * skv) * head_dim);
  round_to_bf16 = round_to_bf16 && stored == DType::F32;
  if (isa == cpu::AttentionIsa::Auto) return round_to_bf16 ? 2 * elems : 0;  // reference fallback
  const cpu::AttentionVariant variant = cpu::variant_of(isa);
  cpu::AttentionProblem p;
  p.bf16 = stored == DType::BF16 || (round_to_bf16 && !variant.rounds_f32);
  p.round_to_bf16 = round_to_bf16 && variant.rounds_f32;
  p.batch = batch_heads;
  p.heads = 1;
  p.sq = sq;
  p.skv = skv;
  p.d = head_dim;
  const int64_t threads = num_threads();
  p.q_chunks = cpu::query_chunks(batch_heads, sq, threads);
  // One workspace per worker of parallel_for, plus the rounded copies of variants that cannot
  // round while packing.
  const size_t copies = round_to_bf16 && !variant.rounds_f32 ? 2 * elems : 0;
  return copies + (variant.workspace_bytes(p) + 63) / 64 * 64 * static_cast<size_t>(std::min(threads, p.tasks()));
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, float scale,
                 Tensor* out) {
  profile::Scope prof("attention", profile::enabled() && q.dim() == 4 && k.dim() == 4
                                       ? 4.0 * q.size(0) * q.size(1) * q.size(2) * k.size(2) * q.size(3)
                                       : 0.0);
  return cpu::attention_with_isa(q, k, v, mask, scale, out, cpu::AttentionIsa::Auto);
}

std::vector<Tensor> attention_bf16_parts(const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                         const std::vector<Tensor>& v, float scale) {
  double flops = 0;
  if (profile::enabled() && !q.empty() && !k.empty() && q[0].dim() == 4) {
    int64_t sq = 0, skv = 0;
    for (const Tensor& t : q) sq += t.size(2);
    for (const Tensor& t : k) skv += t.size(2);
    flops = 4.0 * q[0].size(0) * q[0].size(1) * sq * skv * q[0].size(3);
  }
  profile::Scope prof("attention", flops);
  return cpu::attention_parts_with_isa(q, k, v, scale, cpu::AttentionIsa::Auto);
}

Tensor attention_bf16(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, float scale,
                      Tensor* out) {
  profile::Scope prof("attention", profile::enabled() && q.dim() == 4 && k.dim() == 4
                                       ? 4.0 * q.size(0) * q.size(1) * q.size(2) * k.size(2) * q.size(3)
                                       : 0.0);
  return cpu::attention_with_isa(q, k, v, mask, scale, out, cpu::AttentionIsa::Auto, /*round_to_bf16=*/true);
}

namespace {
double elem(const Tensor& t, const char* base, int64_t b, int64_t h, int64_t s, int64_t d) {
  const Shape& st = t.strides();
  const int64_t idx = b * st[0] + h * st[1] + s * st[2] + d * st[3];
  if (t.dtype() == DType::BF16) return bf16_to_f32(reinterpret_cast<const uint16_t*>(base)[idx]);
  return reinterpret_cast<const float*>(base)[idx];
}
}  // namespace

Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                           float scale) {
  const Dims dm = check_args(q, k, v, mask);
  Tensor out = Tensor::zeros({dm.b, dm.sq, dm.h * dm.d}, DType::F32);
  const char* qb = static_cast<const char*>(q.raw_data());
  const char* kb = static_cast<const char*>(k.raw_data());
  const char* vb = static_cast<const char*>(v.raw_data());
  const float* mb = mask ? mask->data<float>() : nullptr;
  std::vector<double> s(dm.skv), acc(dm.d);
  for (int64_t b = 0; b < dm.b; ++b) {
    for (int64_t h = 0; h < dm.h; ++h) {
      for (int64_t i = 0; i < dm.sq; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < dm.skv; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < dm.d; ++d) dot += elem(q, qb, b, h, i, d) * elem(k, kb, b, h, j, d);
          s[j] = dot * scale;
          if (mb) {
            const int64_t idx[4] = {b, h, i, j};
            int64_t off = 0;
            for (int a = 0; a < 4; ++a) off += mask->size(a) == 1 ? 0 : idx[a] * mask->strides()[a];
            s[j] += mb[off];
          }
          mx = std::max(mx, s[j]);
        }
        float* dst = out.data<float>() + ((b * dm.sq + i) * dm.h + h) * dm.d;
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // all keys -inf: zeros
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < dm.skv; ++j) {
          const double p = std::exp(s[j] - mx);
          sum += p;
          for (int64_t d = 0; d < dm.d; ++d) acc[d] += p * elem(v, vb, b, h, j, d);
        }
        for (int64_t d = 0; d < dm.d; ++d) dst[d] = static_cast<float>(acc[d] / sum);
      }
    }
  }
  return out;
}

}  // namespace qdit::kernels
