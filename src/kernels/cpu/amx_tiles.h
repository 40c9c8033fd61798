// What qdit's AMX kernels (attention, the int8 GEMM, the 4-bit GEMM) share: palette 1 with tiles
// 0-7 of 16 rows x 64 bytes, and a compiler barrier around tile memory accesses. Included only by
// AMX translation units, after their `#pragma GCC target(... amx-tile ...)`; internal linkage, so
// no copy compiled for AMX can stand in for code that runs elsewhere.
#pragma once
#include <cstdint>

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Configures tiles 0-7 as 16 x 64 bytes. Per call (or per thread's task range): oneDNN and the
// other kernels configure their own shapes on the same thread.
inline void load_16x64_tiles() {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  _tile_loadconfig(&cfg);
}

// GCC's tile intrinsics do not tell the compiler they touch memory: order the plain stores that
// fill a buffer before the tile loads that read it, and tile stores before plain loads.
inline void memory_barrier() { __asm__ volatile("" ::: "memory"); }

}  // namespace
