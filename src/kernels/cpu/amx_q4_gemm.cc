// Driver of the AMX 4-bit GEMM (amx_q4_gemm.h): checks, buffers and threads; the vector and tile
// code is in amx_q4_gemm_avx512.cc.
#include "qdit/kernels/cpu/amx_q4_gemm.h"

#include <algorithm>
#include <cmath>

#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/cpu/thread_buffer.h"
#include "qdit/kernels/cpu/isa.h"

namespace qdit::kernels::cpu {

namespace {

// The decoded panels of the widest layer: 2 x 32 x K bf16, 288 KiB for K = 4608.
thread_local ThreadBuffer t_panel_ws;

// x as B tiles for one call (M x K bf16: workspace, recycled within a RecyclingScope).
struct XTiles {
  explicit XTiles(size_t bytes) : bytes(bytes), p(CpuAllocator::instance().allocate(bytes, MemTag::Workspace)) {}
  ~XTiles() { CpuAllocator::instance().deallocate(p, bytes, MemTag::Workspace); }
  XTiles(const XTiles&) = delete;
  XTiles& operator=(const XTiles&) = delete;
  size_t bytes;
  void* p;
};

size_t round64(size_t b) { return (b + 63) / 64 * 64; }

}  // namespace

namespace amx_q4 {

int64_t group_panels(int64_t k, int64_t panels) {
  // About 0.6 MiB of decoded panels per group (two groups, x blocks and y in a 2 MiB L2); at
  // least two panels, so that x is read from L3 at most once per two panels.
  return std::min(panels, std::max<int64_t>(2, (int64_t{640} << 10) / (kPanel * k * 2)));
}

size_t workspace_bytes(int64_t k, int64_t panels) {
  return 2 * round64(sizeof(uint16_t) * static_cast<size_t>(group_panels(k, panels) * kPanel * k)) + 2 * 16 * 64 +
         4 * 1024;
}

Workspace carve_workspace(void* base, int64_t k, int64_t panels) {
  char* p = static_cast<char*>(base);
  Workspace ws;
  ws.group = group_panels(k, panels);
  const size_t group = round64(sizeof(uint16_t) * static_cast<size_t>(ws.group * kPanel * k));
  ws.panel[0] = reinterpret_cast<uint16_t*>(p);
  ws.panel[1] = reinterpret_cast<uint16_t*>(p + group);
  ws.tables = reinterpret_cast<uint16_t*>(p + 2 * group);
  ws.c = reinterpret_cast<float*>(p + 2 * group + 2 * 16 * 64);
  return ws;
}

}  // namespace amx_q4

bool amx_q4_usable(const qk::Lut4Matrix& w) {
  return has_amx_bf16() && w.codes && w.base && w.scale && w.layout != qk::Nibbles::Field && w.n > 0 && w.k > 0 &&
         w.group > 0 && w.group % 32 == 0 && w.k % w.group == 0 && w.row_bytes >= w.k / 2;
}

void amx_q4_prepare(qk::Lut4Matrix& w) {
  // Table entries are b * s (+ z): with |b| <= 8, and b zero or at least 2^-20 (nf4 / fp4 maps)
  // or, with a zero point, an integer (int4wo codes), tame scales and zeros keep every product,
  // sum and rounding normal (or zero) and finite.
  bool ok = true;
  for (int i = 0; i < 16; ++i) {
    const float b = std::fabs(w.base[i]);
    ok = ok && b <= 8.0f && (w.zero ? b == std::nearbyint(b) : (b == 0.0f || b >= 0x1p-20f));
  }
  const int64_t groups = w.k / std::max<int64_t>(w.group, 1);
  for (int64_t r = 0; r < w.n && ok; ++r)
    for (int64_t g = 0; g < groups && ok; ++g)
      ok = amx_q4::tame(w.scale[r * w.scale_row + g * w.scale_group]) &&
           (!w.zero || amx_q4::tame(w.zero[r * w.zero_row + g * w.zero_group]));
  w.tame = ok;
}

void amx_q4_linear(const qk::Lut4Matrix& w, const float* x, int64_t m, const float* bias, bool accumulate, float* y,
                   Activation act) {
  QDIT_CHECK(amx_q4_usable(w), "[amx q4] weight ", w.n, "x", w.k, " (group ", w.group,
             ") does not suit the AMX kernel, or the CPU lacks AMX-BF16");
  if (m <= 0) return;
  const int64_t k = w.k, mp = (m + 31) / 32 * 32, blocks = mp / 16;
  XTiles tiles(sizeof(uint16_t) * static_cast<size_t>(mp * k));
  auto* xv = static_cast<uint16_t*>(tiles.p);
  parallel_for(blocks, 4, [&](int64_t b0, int64_t b1) { amx_q4::pack_x(x, m, k, b0, b1, xv); });
  const amx_q4::Problem p{&w, xv, m, mp, bias, accumulate, y, act};
  const int64_t panels = (w.n + amx_q4::kPanel - 1) / amx_q4::kPanel;
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    void* base = t_panel_ws.get(amx_q4::workspace_bytes(k, p1 - p0));
    amx_q4::run_panels(p, p0, p1, amx_q4::carve_workspace(base, k, p1 - p0));
  });
}

void amx_q4_decode_rows(const qk::Lut4Matrix& w, int64_t n0, int64_t n1, uint16_t* dst) {
  QDIT_CHECK(has_avx512_bf16() && w.layout != qk::Nibbles::Field && w.group % 32 == 0 && w.k % w.group == 0,
             "[amx q4] decode_rows: unsuitable weight or CPU");
  void* base = t_panel_ws.get(amx_q4::workspace_bytes(w.k, 1));
  amx_q4::decode_rows(w, n0, n1, dst, amx_q4::carve_workspace(base, w.k, 1));
}

}  // namespace qdit::kernels::cpu
