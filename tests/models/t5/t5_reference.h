// Plain double-precision T5/UMT5 encoder written straight from transformers' modeling_t5.py, used
// by the T5 tests to check configurations the goldens do not cover (non-gated relu, heads*d_kv
// != d_model, more layers, other bucket counts).
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/weight_source.h"

namespace qdit::testing {

struct T5RefConfig {
  int64_t d_model, d_kv, d_ff, heads, layers, buckets, max_distance;
  bool umt5, gated;
  int act;  // 0 relu, 1 gelu tanh, 2 silu
  double eps = 1e-6;
};

inline double t5_ref_act(int act, double x) {
  if (act == 0) return x > 0 ? x : 0;
  if (act == 1) return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  return x / (1 + std::exp(-x));
}

// Bidirectional bucket in exact arithmetic (the configs used with it have no value on a bucket edge).
inline int64_t t5_ref_bucket(int64_t rel, int64_t buckets, int64_t max_distance) {
  const int64_t half = buckets / 2, max_exact = half / 2;
  const int64_t base = rel > 0 ? half : 0, n = std::llabs(rel);
  if (n < max_exact) return base + n;
  const int64_t large = max_exact + static_cast<int64_t>(std::log(static_cast<double>(n) / max_exact) /
                                                         std::log(static_cast<double>(max_distance) / max_exact) *
                                                         (half - max_exact));
  return base + std::min(large, half - 1);
}

// ids [B*L]; mask [B*L] (empty: none). Returns last_hidden_state [B, L, D] as doubles.
inline std::vector<double> t5_reference(const io::WeightSource& w, const T5RefConfig& c,
                                        const std::vector<int64_t>& ids, const std::vector<float>& mask, int64_t b,
                                        int64_t l) {
  auto get = [&](const std::string& name) {
    std::vector<float> f = w.tensor(name).to_vector();
    return std::vector<double>(f.begin(), f.end());
  };
  const int64_t d = c.d_model, inner = c.heads * c.d_kv, n = b * l;
  // y[n, out] = x[n, in] W[out, in]^T
  auto linear = [&](const std::vector<double>& x, const std::string& name, int64_t in, int64_t out) {
    std::vector<double> wt = get(name), y(static_cast<size_t>(n * out));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double s = 0;
        for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * wt[o * in + i];
        y[r * out + o] = s;
      }
    return y;
  };
  auto rms = [&](const std::vector<double>& x, const std::string& name) {
    std::vector<double> wt = get(name), y(x.size());
    for (int64_t r = 0; r < n; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) ss += x[r * d + i] * x[r * d + i];
      const double inv = 1 / std::sqrt(ss / d + c.eps);
      for (int64_t i = 0; i < d; ++i) y[r * d + i] = x[r * d + i] * inv * wt[i];
    }
    return y;
  };
  std::vector<double> emb = get("shared.weight"), x(static_cast<size_t>(n * d));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < d; ++i) x[r * d + i] = emb[ids[r] * d + i];
  std::vector<double> table;
  for (int64_t li = 0; li < c.layers; ++li) {
    const std::string p = "encoder.block." + std::to_string(li) + ".layer.";
    if (li == 0 || c.umt5) table = get(p + "0.SelfAttention.relative_attention_bias.weight");
    std::vector<double> h = rms(x, p + "0.layer_norm.weight");
    std::vector<double> q = linear(h, p + "0.SelfAttention.q.weight", d, inner);
    std::vector<double> k = linear(h, p + "0.SelfAttention.k.weight", d, inner);
    std::vector<double> v = linear(h, p + "0.SelfAttention.v.weight", d, inner);
    std::vector<double> a(static_cast<size_t>(n * inner), 0.0);
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t hd = 0; hd < c.heads; ++hd)
        for (int64_t i = 0; i < l; ++i) {
          std::vector<double> s(static_cast<size_t>(l));
          double mx = -INFINITY;
          for (int64_t j = 0; j < l; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < c.d_kv; ++e)
              dot += q[(bi * l + i) * inner + hd * c.d_kv + e] * k[(bi * l + j) * inner + hd * c.d_kv + e];
            dot += table[t5_ref_bucket(j - i, c.buckets, c.max_distance) * c.heads + hd];
            if (!mask.empty()) dot += (1.0 - mask[bi * l + j]) * std::numeric_limits<float>::lowest();
            s[j] = dot;
            mx = std::max(mx, dot);
          }
          double z = 0;
          for (double& e : s) z += (e = std::exp(e - mx));
          for (int64_t j = 0; j < l; ++j)
            for (int64_t e = 0; e < c.d_kv; ++e)
              a[(bi * l + i) * inner + hd * c.d_kv + e] += s[j] / z * v[(bi * l + j) * inner + hd * c.d_kv + e];
        }
    std::vector<double> o = linear(a, p + "0.SelfAttention.o.weight", inner, d);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    h = rms(x, p + "1.layer_norm.weight");
    const std::string dr = p + "1.DenseReluDense.";
    std::vector<double> g = linear(h, dr + (c.gated ? "wi_0.weight" : "wi.weight"), d, c.d_ff);
    for (double& e : g) e = t5_ref_act(c.act, e);
    if (c.gated) {
      std::vector<double> lin = linear(h, dr + "wi_1.weight", d, c.d_ff);
      for (size_t i = 0; i < g.size(); ++i) g[i] *= lin[i];
    }
    std::vector<double> f = linear(g, dr + "wo.weight", c.d_ff, d);
    for (size_t i = 0; i < x.size(); ++i) x[i] += f[i];
  }
  return rms(x, "encoder.final_layer_norm.weight");
}

}  // namespace qdit::testing
