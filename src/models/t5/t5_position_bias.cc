#include "qdit/models/t5/t5_position_bias.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"

namespace qdit::models::t5 {

int64_t relative_position_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2;
  int64_t bucket = relative_position > 0 ? half : 0;
  const int64_t n = relative_position < 0 ? -relative_position : relative_position;
  const int64_t max_exact = half / 2;
  if (n < max_exact) return bucket + n;
  // torch: max_exact + (log(n.float() / max_exact) / math.log(max_distance / max_exact)
  //        * (half - max_exact)).to(long), every step in float32. The log is taken in double and
  // rounded once, i.e. correctly rounded, so exact bucket edges (n = 16, 32, 64 for 32/128)
  // land on the integer instead of one ulp below it.
  const float ratio = static_cast<float>(n) / static_cast<float>(max_exact);
  const float log_ratio = static_cast<float>(std::log(static_cast<double>(ratio)));
  const float log_max = static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = (log_ratio / log_max) * static_cast<float>(half - max_exact);
  const int64_t large = std::min<int64_t>(max_exact + static_cast<int64_t>(scaled), half - 1);
  return bucket + large;
}

std::vector<int32_t> relative_position_buckets(int64_t q_len, int64_t k_len, int64_t num_buckets,
                                               int64_t max_distance) {
  QDIT_CHECK(num_buckets >= 4 && max_distance > num_buckets / 4, "[t5] relative attention needs num_buckets >= 4 and ",
             "max_distance > num_buckets / 4, found ", num_buckets, " and ", max_distance);
  // The bucket depends only on j - i: compute each distance once.
  std::vector<int32_t> by_distance(static_cast<size_t>(q_len + k_len));
  for (int64_t d = -(q_len - 1); d < k_len; ++d)
    by_distance[static_cast<size_t>(d + q_len - 1)] =
        static_cast<int32_t>(relative_position_bucket(d, num_buckets, max_distance));
  std::vector<int32_t> out(static_cast<size_t>(q_len * k_len));
  for (int64_t i = 0; i < q_len; ++i)
    for (int64_t j = 0; j < k_len; ++j)
      out[static_cast<size_t>(i * k_len + j)] = by_distance[static_cast<size_t>(j - i + q_len - 1)];
  return out;
}

std::vector<float> extended_key_mask(const Tensor& mask, int64_t batch, int64_t len) {
  QDIT_CHECK(mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == len, "[t5] attention_mask must be [",
             batch, ", ", len, "] like input_ids, found ", mask.desc());
  std::vector<float> m;
  switch (mask.dtype()) {
    case DType::I64: case DType::I32: case DType::I8: case DType::U8: case DType::Bool:
    case DType::F32: case DType::F16: case DType::BF16:
      m = mask.to_vector();
      break;
    default:
      fail("[t5] attention_mask has unsupported dtype ", dtype_name(mask.dtype()));
  }
  // transformers get_extended_attention_mask: (1.0 - mask) * finfo(float32).min, in float32.
  const float fmin = std::numeric_limits<float>::lowest();
  for (float& v : m) v = (1.0f - v) * fmin;
  return m;
}

void fill_attention_bias(const Tensor& table, const std::vector<int32_t>& buckets,
                         const std::vector<float>& key_mask, Tensor& out) {
  QDIT_CHECK(out.dim() == 4 && out.dtype() == DType::F32 && out.is_contiguous(),
             "[t5] attention bias must be a contiguous f32 [B, H, Sq, Skv] tensor, found ", out.desc());
  const int64_t bm = out.size(0), heads = out.size(1), sq = out.size(2), sk = out.size(3);
  QDIT_CHECK(table.dim() == 2 && table.size(1) == heads && table.dtype() == DType::F32 && table.is_contiguous(),
             "[t5] relative_attention_bias must be f32 [num_buckets, ", heads, "], found ", table.desc());
  QDIT_CHECK(static_cast<int64_t>(buckets.size()) == sq * sk, "[t5] bucket table has ", buckets.size(),
             " entries, expected ", sq * sk);
  QDIT_CHECK(key_mask.empty() ? bm == 1 : static_cast<int64_t>(key_mask.size()) == bm * sk,
             "[t5] key mask has ", key_mask.size(), " entries for a [", bm, ", ", sk, "] bias");
  const float* tab = table.data<float>();
  float* o = out.data<float>();
  parallel_for(bm * heads * sq, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r % sq, h = (r / sq) % heads, b = r / (sq * heads);
      const int32_t* brow = buckets.data() + i * sk;
      const float* mrow = key_mask.empty() ? nullptr : key_mask.data() + b * sk;
      float* orow = o + r * sk;
      for (int64_t j = 0; j < sk; ++j) {
        const int64_t bk = brow[j];
        // position_bias + extended mask, one float32 add as in transformers.
        orow[j] = mrow ? tab[bk * heads + h] + mrow[j] : tab[bk * heads + h];
      }
    }
  });
}

}  // namespace qdit::models::t5
