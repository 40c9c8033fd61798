// Vectorised building blocks of the quantization codecs (quant/): row decoders into f32 or bf16,
// 8-bit and 4-bit quantizers, and the per-token int8 activation quantizer. Each computes exactly
// what the scalar reference codecs compute: the same IEEE operations in the same order, bf16 =
// round-to-nearest-even with NaN -> 0x7FC0 (as f32_to_bf16), f16 = IEEE RNE. Tests compare them
// bit for bit with the references.
// Two variants: AVX-512 (entered only when cpu::has_avx512_bf16()) and the AVX2 baseline.
#pragma once
#include <cstdint>

namespace qdit::kernels::qk {

enum class Isa { Auto, Avx2, Avx512 };
bool isa_available(Isa isa);
const char* isa_name(Isa isa = Isa::Auto);  // the variant `isa` resolves to

// Test hook: makes Isa::Auto resolve to `isa` (which must be available) while it lives.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa);
  ~ScopedIsa();
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  int prev_;
};

// Rounding a codec applies after each arithmetic step: none (f32 math) or to bf16 (torch computes
// bf16 weights' quantization arithmetic in bf16).
enum class Round : uint8_t { None, BF16 };

// How 4-bit (or 2-bit) codes sit in bytes.
enum class Nibbles : uint8_t {
  LowFirst,   // two per byte, code 2i in the low nibble of byte i (torchao int4)
  HighFirst,  // two per byte, code 2i in the high nibble (bitsandbytes nf4/fp4)
  Field,      // one per byte: (byte >> shift) & (2^field_bits - 1) (quanto's planar qint4/qint2)
};

// One run of codes decoded through per-group 16-entry tables:
//   table_g[c] = R(R(base[c] * scale[g * scale_stride]) + zero[g * zero_stride])
// (no add when zero is null; R = `round`), dst[i] = table_{group of i}[code i].
// Group 0 holds the first `first_group` codes, later groups `group` codes each.
struct Lut4Run {
  const uint8_t* bytes = nullptr;
  Nibbles layout = Nibbles::LowFirst;
  bool odd_start = false;  // pair layouts: code 0 is the second nibble of bytes[0]
  int shift = 0, field_bits = 4;  // Field layout
  int64_t n = 0, group = 1, first_group = 1;
  const float* base = nullptr;  // 16 entries
  const float* scale = nullptr;
  int64_t scale_stride = 1;
  const float* zero = nullptr;
  int64_t zero_stride = 1;
  Round round = Round::None;
};

// A whole [n, k] weight of 4-bit codes in a pair layout (LowFirst or HighFirst), row r's code j
// at nibble j of codes + r * row_bytes, decoded through per-(row, group) tables as Lut4Run does:
//   table[c] = R(R(base[c] * scale[r * scale_row + g * scale_group]) + zero[likewise]), g = j / group
// (no add when zero is null). Offered by decoders whose rows split into whole groups of a
// multiple of 32 codes (k a multiple of group), for kernels that decode panels of it themselves.
struct Lut4Matrix {
  const uint8_t* codes = nullptr;
  int64_t row_bytes = 0;
  Nibbles layout = Nibbles::LowFirst;
  int64_t n = 0, k = 0, group = 32;
  const float* base = nullptr;  // 16 entries
  const float* scale = nullptr;
  int64_t scale_row = 0, scale_group = 0;
  const float* zero = nullptr;
  int64_t zero_row = 0, zero_group = 0;
  Round round = Round::None;
  // Set by cpu::amx_q4_prepare: every scale and zero is 0 or of magnitude in [2^-100, 2^100), so
  // that the hardware bf16 conversion is exact on every table value.
  bool tame = false;
};

// Symmetric int8 codes of a row: v = x (rounded to f16 first when f16_first), v = v / s (divide)
// or v * s, v = R(v), q = clamp(round_half_even(v), lo, hi).
struct QuantS8Params {
  float s = 1.0f;
  bool divide = false, f16_first = false;
  Round round = Round::None;
  float lo = -128.0f, hi = 127.0f;
};

// fp8 codes of a row: v = R(x / s), clamped to [-fmax, fmax], then cast RNE (as f32_to_fp8_*).
struct QuantFp8Params {
  float s = 1.0f, fmax = 448.0f;
  bool e5m2 = false;
  Round round = Round::None;
};

// Nearest-entry 4-bit codes (bitsandbytes nf4 / fp4): v = clamp(x * inv, -1, 1); i = how many of
// the `count` ascending midpoints lie below v (below |v| with sign_bit); the code is i, or
// code_of[i] | (v < 0 ? 8 : 0) with sign_bit (fp4: sign, then the nearest magnitude).
struct NearestCodes {
  const float* mids = nullptr;
  int count = 0;  // at most 15
  bool sign_bit = false;
  const uint8_t* code_of = nullptr;  // sign_bit: count + 1 entries (at most 8)
};

struct Kernels {
  const char* name;
  // dst[i] = R(float(c[i]) * s)
  void (*s8_mul_f32)(const int8_t* c, int64_t n, float s, Round r, float* dst);
  void (*s8_mul_bf16)(const int8_t* c, int64_t n, float s, Round r, uint16_t* dst);
  // dst[i] = R(fp8_to_f32(c[i]) * s) (e4m3fn or e5m2 codes)
  void (*fp8_mul_f32)(const uint8_t* c, int64_t n, bool e5m2, float s, Round r, float* dst);
  void (*fp8_mul_bf16)(const uint8_t* c, int64_t n, bool e5m2, float s, Round r, uint16_t* dst);
  void (*lut4_f32)(const Lut4Run& run, float* dst);
  void (*lut4_bf16)(const Lut4Run& run, uint16_t* dst);
  // max |x| (NaN ignored) of n f32 or bf16 values; abs_max_f16 rounds each value to f16 first.
  float (*abs_max)(const void* x, bool bf16, int64_t n);
  float (*abs_max_f16)(const void* x, bool bf16, int64_t n);
  void (*quant_s8)(const void* x, bool bf16, int64_t n, const QuantS8Params& p, int8_t* q);
  void (*quant_fp8)(const void* x, bool bf16, int64_t n, const QuantFp8Params& p, uint8_t* q);
  // min and max of n >= 1 f32 values (NaN-free).
  void (*min_max)(const float* x, int64_t n, float* mn, float* mx);
  // torchao int4wo codes: out[i] = clamp(round_half_even((x[i] - mn) / s), 0, 15).
  void (*affine_codes)(const float* x, int64_t n, float mn, float s, uint8_t* out);
  void (*nearest_codes)(const float* x, int64_t n, float inv, const NearestCodes& t, uint8_t* out);
  // Int8Linear's epilogue over rows x n values: v = t (times row_scale[i] unless null, plus bias[j]
  // unless null), out = accumulate ? out + v : v. out may be t.
  void (*epilogue_rows)(const float* t, int64_t rows, int64_t n, const float* row_scale, const float* bias,
                        bool accumulate, float* out);
  // Per-token int8 (kernels::quantize_rows_s8, one row): scale = max(amax / divisor, f32 eps),
  // q = clamp(round_half_even(x * (1 / scale)), -128, 127); x f32, or bf16 (widened exactly).
  void (*act_quant_s8)(const void* x, bool bf16, int64_t k, float divisor, int8_t* q, float* scale);
};

const Kernels& get(Isa isa = Isa::Auto);

}  // namespace qdit::kernels::qk
