// Internal interface of the CPU attention kernel: the validated problem as plain pointers and
// strides, and one entry point per instruction-set variant (attention_avx2.cc, attention_avx512.cc).
// attention.cc dispatches; tests call attention_with_isa() to run every variant.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::kernels::cpu {

struct AttentionProblem {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  bool bf16 = false;  // q, k, v are bf16 (else f32)
  // f32 q, k, v computed in bf16: rounded to nearest even while packed (only variants that
  // declare rounds_f32 get such problems; the others get bf16 copies).
  bool round_to_bf16 = false;
  int64_t batch = 0, heads = 0, sq = 0, skv = 0, d = 0;
  // Element strides of the batch, head and sequence dims (the last dim is contiguous).
  int64_t q_stride[3] = {}, k_stride[3] = {}, v_stride[3] = {};
  // A second part along the sequence (joint attention over text + image tokens without
  // concatenating them): rows s >= *_split of q/k/v come from *1 at row s - split, and output rows
  // s >= out_split go to out1 ([B, Sq - out_split, H*D] contiguous). Only variants with
  // `seq_parts` get such problems.
  const void* q1 = nullptr;
  const void* k1 = nullptr;
  const void* v1 = nullptr;
  int64_t q1_stride[3] = {}, k1_stride[3] = {}, v1_stride[3] = {};
  int64_t q_split = INT64_MAX, k_split = INT64_MAX, v_split = INT64_MAX;
  float* out1 = nullptr;
  int64_t out_split = INT64_MAX;
  const float* mask = nullptr;
  int64_t mask_stride[4] = {};  // b, h, query, key; 0 where the mask broadcasts
  float scale = 1.0f;
  float* out = nullptr;         // [B, Sq, H*D] contiguous
  // Instead of out (AMX variant, one part): the output rounded to bf16 (nearest even), for a
  // consumer that rounds its input to bf16 anyway.
  uint16_t* out_bf16 = nullptr;
  // Tasks are (batch*head, query chunk) pairs: the query rows of each head are split into
  // q_chunks ranges so that small B*H still feeds every thread.
  int64_t q_chunks = 1;
  int64_t tasks() const { return batch * heads * q_chunks; }
};

// One kernel variant: per-thread workspace size, and a run over tasks [t0, t1).
struct AttentionVariant {
  const char* name;
  bool rounds_f32;  // takes round_to_bf16 problems and two-part sequences
  size_t (*workspace_bytes)(const AttentionProblem&);
  void (*run)(const AttentionProblem&, int64_t t0, int64_t t1, void* workspace);
};

// Variants (the AVX-512 one must only be run when cpu::has_avx512_bf16(), the AMX one when
// cpu::has_amx_bf16(); the AMX one runs f32 problems with the AVX-512 f32 kernel).
AttentionVariant attention_variant_avx2();
AttentionVariant attention_variant_avx512();
AttentionVariant attention_variant_amx();
// The AVX-512 tiling and bf16 pair layouts executed with 16-lane AVX2 emulation: lets machines
// without AVX-512 test that code path's logic (slow; tests only).
AttentionVariant attention_variant_avx512_emulated();

enum class AttentionIsa { Auto, Avx2, Avx512, Avx512Emulated, Amx };
bool attention_isa_available(AttentionIsa isa);
// The fastest variant this CPU runs (Auto when it lacks AVX2: attention() then runs the
// reference), a variant's entry points, and how each head's query rows are split among threads.
AttentionIsa best_attention_isa();
AttentionVariant variant_of(AttentionIsa isa);
int64_t query_chunks(int64_t batch_heads, int64_t sq, int64_t threads);

// attention_bf16_parts() with an explicit variant.
std::vector<Tensor> attention_parts_with_isa(const std::vector<Tensor>& q, const std::vector<Tensor>& k,
                                             const std::vector<Tensor>& v, float scale, AttentionIsa isa);

// attention() (attention_bf16() with round_to_bf16) with an explicit variant (Auto = what
// attention() uses).
Tensor attention_with_isa(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                          float scale, Tensor* out, AttentionIsa isa, bool round_to_bf16 = false);

}  // namespace qdit::kernels::cpu
