// AMX bf16 GEMM for 4-bit weight-only Linear layers (torchao int4wo, bitsandbytes nf4 / fp4 with
// or without double quantization): y = x W^T (+ bias) (y += that when accumulating), with W given
// as 4-bit codes + per-(row, group) tables (qk::Lut4Matrix), the bias and activation applied in the
// epilogue. The weight is never decoded whole:
// each thread walks panels of 32 output features; a panel's codes are decoded (the codecs' own
// table arithmetic, bit for bit the decoders' bf16 rows) into a small buffer already in AMX's
// A-tile layout, while the tile products of the previous panel run (the decode is spread over
// that panel's K loop, so the vector units work while the TMUL multiplies).
//
// Roles: the weight panel is the A operand (16 weight rows x 32 k per tile: plain decoded rows,
// no transpose) and x, re-laid out once per call as k-pairs (AMX's B layout), is the B operand;
// each C tile is a 16 (features) x 16 (tokens) block of y^T, transposed on the way out.
#pragma once
#include <cstddef>
#include <cstdint>

#include "qdit/kernels/gemm.h"
#include "qdit/kernels/quant_kernels.h"

namespace qdit::kernels::cpu {

// The CPU has AMX-BF16 and the weight suits the kernel (pair layout, groups of a multiple of 32
// codes that tile each row).
bool amx_q4_usable(const qk::Lut4Matrix& w);

// Sets w.tame from its scales and zeros (once, when a layer is built).
void amx_q4_prepare(qk::Lut4Matrix& w);

// y[m, n] = sum_k bf16(x[m, k]) W[n, k] (+ bias[n]); accumulate: y += that. x: f32 [m, k]
// row-major, rounded to bf16 (RNE, NaN -> 0x7FC0, as f32_to_bf16) as it is packed; y: f32 [m, n].
// Threads (parallel_for) over panels of output features.
void amx_q4_linear(const qk::Lut4Matrix& w, const float* x, int64_t m, const float* bias, bool accumulate, float* y,
                   Activation act = Activation::None);

// The kernel's own decode of rows [n0, n1) as bf16 rows [n1 - n0, k] (tests compare it with the
// scheme decoder's decode_rows_bf16, bit for bit). Needs AVX-512 BF16 only.
void amx_q4_decode_rows(const qk::Lut4Matrix& w, int64_t n0, int64_t n1, uint16_t* dst);

// Between the plain driver (amx_q4_gemm.cc) and the AVX-512 / AMX code (amx_q4_gemm_avx512.cc).
namespace amx_q4 {
constexpr int64_t kPanel = 32;  // weight rows (output features) per panel: two A tiles
struct Problem {
  const qk::Lut4Matrix* w;
  const uint16_t* xv;  // bf16 x as B tiles: [mp / 16][k / 32] tiles of 16 k-pairs x 16 tokens x 2
  int64_t m, mp;       // tokens, and rounded up to 32
  const float* bias;
  bool accumulate;
  float* y;
  Activation act;  // after the bias, before the accumulate
};
// Per-thread buffers: two groups of panels (k / 32 x 2 A tiles per panel; about 0.6 MiB a group,
// at most the layer's panels), the tables of a panel's 32 rows, and four C tiles.
int64_t group_panels(int64_t k, int64_t panels);
struct Workspace {
  int64_t group;       // panels per buffer
  uint16_t* panel[2];
  uint16_t* tables;
  float* c;
};
size_t workspace_bytes(int64_t k, int64_t panels);
Workspace carve_workspace(void* base, int64_t k, int64_t panels);
// B tiles of 16-token blocks [b0, b1) of x, rounded to bf16 (rows past m are zeros).
void pack_x(const float* x, int64_t m, int64_t k, int64_t b0, int64_t b1, uint16_t* xv);
// Panels [p0, p1) of y's columns.
void run_panels(const Problem& p, int64_t p0, int64_t p1, const Workspace& ws);
void decode_rows(const qk::Lut4Matrix& w, int64_t n0, int64_t n1, uint16_t* dst, const Workspace& ws);
bool tame(float v);
}  // namespace amx_q4

}  // namespace qdit::kernels::cpu
