// T5/UMT5 relative position bias (transformers 4.44.2): bidirectional buckets with the exact
// float32 log-bucket arithmetic torch uses, and the additive attention mask [B|1, H, Sq, Skv]
// = bias + (1 - mask) * finfo(f32).min that T5Encoder hands to the fused attention kernel.
#pragma once
#include <cstdint>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::models::t5 {

// transformers T5Attention._relative_position_bucket(relative_position = key - query,
// bidirectional=True): half the buckets per direction, the first half of those exact, the rest
// logarithmic up to max_distance; float32 math, truncated towards zero, clamped.
int64_t relative_position_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance);

// Bucket of (key j - query i) for every i < q_len, j < k_len, row-major [q_len, k_len].
std::vector<int32_t> relative_position_buckets(int64_t q_len, int64_t k_len, int64_t num_buckets,
                                               int64_t max_distance);

// Additive key mask row per batch item: (1 - mask) * finfo(float32).min, as f32 [B, L].
// mask: I64/I32/Bool/float [B, L] (1 keep, 0 pad).
std::vector<float> extended_key_mask(const Tensor& mask, int64_t batch, int64_t len);

// Fills out [Bm, H, Sq, Skv] (f32, contiguous) with table[bucket(i, j), h] + key_mask[b, j]
// (key_mask empty: Bm must be 1 and nothing is added). table: f32 [num_buckets, H].
void fill_attention_bias(const Tensor& table, const std::vector<int32_t>& buckets,
                         const std::vector<float>& key_mask, Tensor& out);

}  // namespace qdit::models::t5
