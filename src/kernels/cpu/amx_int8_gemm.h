// s8 x s8 GEMM on AMX tiles (TDPBSSD) for Int8Linear, with its per-token/per-channel scale epilogue.
// oneDNN 2.6's brgemm reaches about a third of one core's AMX int8 rate on DiT shapes; this kernel
// keeps a 32-column weight panel slice in L1 and a block of quantized rows in L2 instead.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qdit/core/tensor.h"
#include "qdit/kernels/gemm.h"
#include "qdit/kernels/cpu/isa.h"

namespace qdit::kernels::cpu {

class AmxInt8Gemm {
 public:
  static constexpr int64_t kRowAlign = 32;  // A buffers hold a multiple of this many rows
  static int64_t padded_rows(int64_t m) { return (m + kRowAlign - 1) / kRowAlign * kRowAlign; }
  static bool available() { return has_amx_int8(); }  // AMX-INT8 usable on this CPU
  // w: s8 [n, k] row-major, packed once here (zero padded to 32 columns and 64-deep k steps).
  AmxInt8Gemm(const int8_t* w, int64_t n, int64_t k);
  // Row stride (bytes) of the quantized activations run() reads: k rounded up to 64, padding zero.
  int64_t lda() const { return kp_; }
  size_t packed_bytes() const { return packed_.nbytes(); }
  struct Epilogue {
    const float* bias = nullptr;  // [n] or null
    Activation act = Activation::None;
    bool accumulate = false;
    const float* gate = nullptr;  // with accumulate: row i adds gate[(i / gate_rows) * gate_ld + j] * value
    int64_t gate_ld = 0, gate_rows = 1;
    // Without accumulate: write y with non-temporal stores (outputs larger than L2, which the next
    // op reads long after; plain stores first read every line from memory).
    bool stream = false;
    // y is bf16 (uint16_t bits, the f32 value rounded to nearest even; GELU computed to bf16
    // precision, within one ulp of that); not with accumulate or gate.
    bool bf16_out = false;
  };
  // value[i, j] = act((acc[i, j] * w_scale[j]) * a_scale[i] + bias[j]) into y (row stride ldy),
  // or gate * value added to y, for rows i < m of a: s8 rows of lda() bytes as AMX A tiles
  // (RowQuantSpec::amx_tiles: 16-row groups of [lda/64][16][64]), rows up to a multiple of 32
  // present (the padding rows' results are dropped).
  void run(const int8_t* a, int64_t m, const float* a_scale, const float* w_scale, const Epilogue& e, void* y,
           int64_t ldy) const;

 private:
  int64_t n_, k_, kp_, panels_;
  Tensor packed_;  // [panels][kp/64][2 tiles][16 k-quads][16 columns][4]
};

}  // namespace qdit::kernels::cpu
