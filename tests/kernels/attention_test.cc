// Fused attention vs attention_reference (double, materialised scores) for every kernel variant
// this CPU can run (AVX2, AVX-512 BF16, and the AVX-512 tiling emulated on AVX2), both dtypes,
// odd sizes, strided views and every mask kind the models use; plus argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "qdit/core/allocator.h"
#include "qdit/core/error.h"
#include "qdit/core/parallel.h"
#include "qdit/kernels/attention.h"
#include "qdit/kernels/cpu/attention_cpu.h"
#include "qdit/kernels/layout.h"

namespace qdit::kernels {
namespace {

using cpu::AttentionIsa;

constexpr float kFinfoMin = -std::numeric_limits<float>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor random_tensor(const Shape& shape, float amp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amp, amp);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = u(rng);
  return Tensor::from_vector(v, shape);
}

struct Qkv {
  Tensor q, k, v;
};

// [B, H, S, D] tensors; with `permuted`, views of [B, S, H, D] buffers (non-contiguous).
Qkv make_qkv(int64_t b, int64_t h, int64_t sq, int64_t skv, int64_t d, DType dt, bool permuted,
             uint32_t seed, float amp = 2.0f) {
  auto make = [&](int64_t s, uint32_t sd) {
    Tensor t = random_tensor(permuted ? Shape{b, s, h, d} : Shape{b, h, s, d}, amp, sd);
    if (dt != DType::F32) t = t.to(dt);
    return permuted ? t.permute({0, 2, 1, 3}) : t;
  };
  Qkv r{make(sq, seed), make(skv, seed + 1), make(skv, seed + 2)};
  return r;
}

std::vector<AttentionIsa> variants() {
  std::vector<AttentionIsa> out;
  for (auto isa : {AttentionIsa::Avx2, AttentionIsa::Avx512, AttentionIsa::Avx512Emulated, AttentionIsa::Amx}) {
    if (cpu::attention_isa_available(isa)) out.push_back(isa);
  }
  return out;
}
const char* isa_name(AttentionIsa isa) {
  switch (isa) {
    case AttentionIsa::Auto: return "auto";
    case AttentionIsa::Avx2: return "avx2";
    case AttentionIsa::Avx512: return "avx512";
    case AttentionIsa::Avx512Emulated: return "avx512-emulated";
    case AttentionIsa::Amx: return "amx";
  }
  return "?";
}

float max_abs(const Tensor& t) {
  float m = 0.0f;
  for (float x : t.to_vector()) m = std::max(m, std::fabs(x));
  return m;
}

// Tolerances. f32: the kernel does what PyTorch's f32 path does (f32 dot products, f32 softmax
// with a ~1 ulp exp); 1e-5 relative to the output scale leaves room for summation order.
// bf16: inputs are exact in the reference (it reads the same bf16 values), so the error is the
// bf16 rounding of P: each weight p_j/sum(p) moves by at most ~2 * 2^-9 relative (rounding of
// p_j and of the sum), so the output moves by at most 2^-8 * max|v| (~0.4% of the V scale).
float tolerance(const Qkv& t, const Tensor& ref) {
  if (t.q.dtype() == DType::F32) return 1e-5f * std::max(1.0f, max_abs(ref));
  return std::ldexp(1.0f, -8) * max_abs(t.v.to(DType::F32));
}

void expect_close(const Tensor& got, const Tensor& ref, float tol, const std::string& what) {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  const auto g = got.to_vector(), r = ref.to_vector();
  float worst = 0.0f;
  size_t worst_i = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_FALSE(std::isnan(g[i])) << what << " NaN at " << i;
    const float e = std::fabs(g[i] - r[i]);
    if (e > worst) worst = e, worst_i = i;
  }
  EXPECT_LE(worst, tol) << what << ": worst error at flat index " << worst_i << " got " << g[worst_i]
                        << " want " << r[worst_i];
}

// Runs every variant (and attention() itself) against the reference.
void check_all(const Qkv& t, const Tensor* mask, float scale, const std::string& what) {
  const Tensor ref = attention_reference(t.q, t.k, t.v, mask, scale);
  const float tol = tolerance(t, ref);
  expect_close(attention(t.q, t.k, t.v, mask, scale), ref, tol, what + " [auto]");
  for (auto isa : variants()) {
    expect_close(cpu::attention_with_isa(t.q, t.k, t.v, mask, scale, nullptr, isa), ref, tol,
                 what + " [" + isa_name(isa) + "]");
  }
}

std::string name(DType dt, const std::string& s) { return std::string(dtype_name(dt)) + " " + s; }

TEST(Attention, HeadDimsAndOddSizes) {
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int64_t d : {8, 12, 16, 24, 32, 40, 64, 72, 80, 128, 256}) {
      const Qkv t = make_qkv(1, 2, 37, 53, d, dt, false, 100 + static_cast<uint32_t>(d));
      check_all(t, nullptr, 1.0f / std::sqrt(static_cast<float>(d)), name(dt, "D=" + std::to_string(d)));
    }
    for (int64_t d : {1, 3, 5}) {  // tiny and odd head dims (padded pairs / lanes)
      const Qkv t = make_qkv(2, 1, 5, 3, d, dt, false, 7);
      check_all(t, nullptr, 0.5f, name(dt, "tiny D=" + std::to_string(d)));
    }
  }
}

TEST(Attention, ManyBlocksStridedViewsOddHeadCount) {
  // Several query blocks and key blocks with tails in both; B*H = 3 splits heads across threads;
  // q/k/v are [B, S, H, D] buffers seen as [B, H, S, D].
  for (DType dt : {DType::F32, DType::BF16}) {
    const Qkv t = make_qkv(1, 3, 203, 301, 72, dt, true, 11);
    ASSERT_FALSE(t.q.is_contiguous());
    check_all(t, nullptr, 1.0f / std::sqrt(72.0f), name(dt, "blocks"));
    const Qkv c = make_qkv(2, 2, 130, 97, 40, dt, true, 12);
    check_all(c, nullptr, 0.15f, name(dt, "cross"));
  }
}

Tensor key_padding(int64_t b, int64_t skv, float value) {  // [B, 1, 1, Skv]; batch i keeps skv-7i keys
  Tensor m = Tensor::zeros({b, 1, 1, skv}, DType::F32);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = skv - 7 * i - 5; j < skv; ++j) m.data<float>()[i * skv + j] = value;
  return m;
}

TEST(Attention, Masks) {
  const int64_t B = 2, H = 3, SQ = 45, SKV = 150, D = 40;
  for (DType dt : {DType::F32, DType::BF16}) {
    const Qkv t = make_qkv(B, H, SQ, SKV, D, dt, true, 21);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const Tensor pad = key_padding(B, SKV, -10000.0f);
    check_all(t, &pad, scale, name(dt, "key padding -10000"));
    const Tensor padmin = key_padding(B, SKV, kFinfoMin);
    check_all(t, &padmin, scale, name(dt, "key padding finfo.min"));

    // T5: unscaled scores + position bias (with a ramp so later key blocks keep raising the
    // running max) + padding, full [B, H, Sq, Skv]; and the bias alone broadcast over batch.
    Tensor bias = random_tensor({1, H, SQ, SKV}, 3.0f, 22);
    for (int64_t i = 0; i < H * SQ * SKV; ++i) bias.data<float>()[i] += 0.04f * (i % SKV);
    Tensor full = Tensor::empty({B, H, SQ, SKV}, DType::F32);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < H * SQ * SKV; ++i)
        full.data<float>()[b * H * SQ * SKV + i] = bias.data<float>()[i] + padmin.data<float>()[b * SKV + i % SKV];
    check_all(t, &full, 1.0f, name(dt, "T5 bias + padding"));
    check_all(t, &bias, 1.0f, name(dt, "T5 bias broadcast over batch"));

    // Causal with Sq != Skv (query i sees keys <= i + Skv - Sq), -inf above the diagonal.
    Tensor causal = Tensor::zeros({1, 1, SQ, SKV}, DType::F32);
    for (int64_t i = 0; i < SQ; ++i)
      for (int64_t j = i + SKV - SQ + 1; j < SKV; ++j) causal.data<float>()[i * SKV + j] = -kInf;
    check_all(t, &causal, scale, name(dt, "causal -inf"));

    // A mask whose key dim is strided (a transposed view): gathered path.
    Tensor mt = random_tensor({1, 1, SKV, SQ}, 4.0f, 23).transpose(2, 3);
    ASSERT_NE(mt.strides()[3], 1);
    check_all(t, &mt, scale, name(dt, "strided mask"));
    // Broadcast along keys ([1, H, Sq, 1]): a per-row constant, which softmax must ignore.
    Tensor per_row = random_tensor({1, H, SQ, 1}, 50.0f, 24);
    check_all(t, &per_row, scale, name(dt, "per-row constant mask"));
    const Tensor plain = attention_reference(t.q, t.k, t.v, nullptr, scale);
    expect_close(attention(t.q, t.k, t.v, &per_row, scale), plain, tolerance(t, plain),
                 name(dt, "per-row constant mask vs no mask"));
  }
}

TEST(Attention, FullyMaskedRows) {
  const int64_t SQ = 9, SKV = 150, D = 24;
  for (DType dt : {DType::F32, DType::BF16}) {
    const Qkv t = make_qkv(1, 2, SQ, SKV, D, dt, false, 31);
    Tensor m = Tensor::zeros({1, 1, SQ, SKV}, DType::F32);
    for (int64_t j = 0; j < SKV; ++j) {
      m.data<float>()[3 * SKV + j] = kFinfoMin;  // row 3: every key finfo.min -> uniform
      m.data<float>()[5 * SKV + j] = -kInf;      // row 5: every key -inf -> zeros
      if (j % 3) m.data<float>()[6 * SKV + j] = kFinfoMin;  // row 6: partly masked
    }
    check_all(t, &m, 0.2f, name(dt, "fully masked rows"));
    // Hand check of row 3 (PyTorch semantics): the plain mean of V over all keys.
    const Tensor vf = t.v.to(DType::F32).contiguous();
    for (auto isa : variants()) {
      const Tensor out = cpu::attention_with_isa(t.q, t.k, t.v, &m, 0.2f, nullptr, isa);
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t d = 0; d < D; ++d) {
          double mean = 0.0;
          for (int64_t j = 0; j < SKV; ++j) mean += vf.data<float>()[(h * SKV + j) * D + d];
          mean /= SKV;
          const float tol = dt == DType::F32 ? 1e-5f : 2e-2f;
          EXPECT_NEAR(out.data<float>()[(3 * 2 + h) * D + d], mean, tol) << isa_name(isa);
          EXPECT_EQ(out.data<float>()[(5 * 2 + h) * D + d], 0.0f) << isa_name(isa);
        }
      }
    }
  }
}

// The planner's count of attention scratch is what the kernel really allocates besides its
// output: CpuAllocator's peak during a call, for f32, bf16, and bf16 rounding of f32 inputs, at
// several thread counts and shapes (odd lengths, cross-attention lengths).
TEST(Attention, ScratchBytesEqualWhatACallAllocates) {
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    struct Shape4 {
      int64_t b, h, sq, skv, d;
    };
    for (Shape4 sh : {Shape4{1, 2, 37, 37, 72}, Shape4{2, 3, 64, 19, 64}, Shape4{1, 1, 5, 300, 128}}) {
      for (int mode = 0; mode < 3; ++mode) {  // f32, bf16, f32 rounded to bf16
        SCOPED_TRACE("threads " + std::to_string(threads) + " mode " + std::to_string(mode) + " sq " +
                     std::to_string(sh.sq) + " skv " + std::to_string(sh.skv));
        const DType stored = mode == 1 ? DType::BF16 : DType::F32;
        const Qkv t = make_qkv(sh.b, sh.h, sh.sq, sh.skv, sh.d, stored, false, 7);
        Tensor out = Tensor::empty({sh.b, sh.sq, sh.h * sh.d}, DType::F32);
        CpuAllocator& a = CpuAllocator::instance();
        a.reset_peaks();
        const size_t before = a.stats().total_live;
        if (mode == 2) {
          attention_bf16(t.q, t.k, t.v, nullptr, 0.125f, &out);
        } else {
          attention(t.q, t.k, t.v, nullptr, 0.125f, &out);
        }
        EXPECT_EQ(a.stats().total_peak - before,
                  attention_scratch_bytes(sh.b * sh.h, sh.sq, sh.skv, sh.d, stored, mode == 2));
      }
    }
  }
  set_num_threads(saved);
}

TEST(Attention, AmxVariantPresentWhenCpuHasIt) {
  // Guards against the AMX tests above silently not running: on a CPU that lists amx_bf16 (and
  // with no QDIT_FORCE_ISA), the variant must be usable (the kernel grants AMX per process).
  std::ifstream f("/proc/cpuinfo");
  const std::string info((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const bool listed = info.find(" amx_bf16") != std::string::npos && info.find(" amx_tile") != std::string::npos &&
                      info.find(" avx512_bf16") != std::string::npos;
  if (!listed || std::getenv("QDIT_FORCE_ISA")) GTEST_SKIP() << "no AMX-BF16 on this CPU (or forced ISA)";
  EXPECT_TRUE(cpu::attention_isa_available(AttentionIsa::Amx));
}

TEST(Attention, LongRowsAcrossKeyBlocks) {
  // Many key blocks (the AMX kernel takes 256 keys per block, pipelined over two buffers), a
  // query tail of 6 rows (a half-height tile), head dims with (72, 40) and without (64, 128) spare
  // padding columns, and masks whose ramps raise the running max block after block (rescaling
  // O) or lower it (the stale max is kept).
  for (int64_t d : {64, 72, 40, 128}) {
    const int64_t SQ = 70, SKV = 1100, H = 2;
    const Qkv t = make_qkv(1, H, SQ, SKV, d, DType::BF16, true, 70 + static_cast<uint32_t>(d));
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    check_all(t, nullptr, scale, name(DType::BF16, "long D=" + std::to_string(d)));
    Tensor up = Tensor::zeros({1, 1, 1, SKV}, DType::F32), down = Tensor::zeros({1, 1, 1, SKV}, DType::F32);
    for (int64_t j = 0; j < SKV; ++j) {
      up.data<float>()[j] = 0.05f * static_cast<float>(j);  // +12.8 per 256-key block
      down.data<float>()[j] = -0.05f * static_cast<float>(j);
    }
    check_all(t, &up, scale, name(DType::BF16, "rising mask D=" + std::to_string(d)));
    check_all(t, &down, scale, name(DType::BF16, "falling mask D=" + std::to_string(d)));
  }
}

TEST(Attention, UniformWeightsAverageEveryKeyOnce) {
  // q = 0 makes every weight exactly 1, so each output row is the plain mean of V: a key block
  // counted twice or skipped by the pipelined kernels (across key blocks, query blocks and the
  // query tail) shows up far above the f32 rounding of the sums.
  for (int64_t skv : {37, 256, 257, 600, 1100}) {
    for (int64_t d : {72, 64}) {
      const int64_t SQ = 70;
      for (DType dt : {DType::F32, DType::BF16}) {
        Tensor q = Tensor::zeros({1, 2, SQ, d}, DType::F32);
        Tensor k = random_tensor({1, 2, skv, d}, 1.0f, 5);
        Tensor v = Tensor::empty({1, 2, skv, d}, DType::F32);
        for (int64_t i = 0; i < v.numel(); ++i) v.data<float>()[i] = static_cast<float>((i / d) % skv) / skv + 0.01f * (i % d);
        const Tensor vr = v.to(dt).to(DType::F32);
        if (dt != DType::F32) q = q.to(dt), k = k.to(dt), v = v.to(dt);
        for (auto isa : variants()) {
          const Tensor out = cpu::attention_with_isa(q, k, v, nullptr, 0.1f, nullptr, isa);
          for (int64_t h = 0; h < 2; ++h)
            for (int64_t c = 0; c < d; ++c) {
              double mean = 0;
              for (int64_t j = 0; j < skv; ++j) mean += vr.data<float>()[(h * skv + j) * d + c];
              mean /= skv;
              for (int64_t r : {int64_t{0}, int64_t{33}, SQ - 1})
                ASSERT_NEAR(out.data<float>()[(r * 2 + h) * d + c], mean, 1e-4)
                    << "skv " << skv << " D " << d << " " << dtype_name(dt) << " " << isa_name(isa);
            }
        }
      }
    }
  }
}

TEST(Attention, Bf16ComputeOnF32ViewsEqualsBf16Copies) {
  // attention_bf16 on f32 strided views (heads of [B, S, H*D] buffers, a column slice like the
  // fused q/k/v output) gives exactly the result of the bf16 kernel on rounded copies.
  for (int64_t d : {72, 64, 40, 5}) {
    const int64_t B = 2, H = 3, SQ = 77, SKV = 300;
    const Tensor fused = random_tensor({B, SQ, 3 * H * d}, 2.0f, 90 + static_cast<uint32_t>(d));
    auto heads = [&](int64_t part) {
      return fused.reshape({B, SQ, 3, H, d}).select(2, part).permute({0, 2, 1, 3});
    };
    const Tensor q = heads(0), kv = random_tensor({B, SKV, H, d}, 2.0f, 91).permute({0, 2, 1, 3});
    const Tensor v = random_tensor({B, SKV, H, d}, 2.0f, 92).permute({0, 2, 1, 3});
    ASSERT_FALSE(q.is_contiguous());
    const Tensor mask = key_padding(B, SKV, -10000.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    for (const Tensor* m : {static_cast<const Tensor*>(nullptr), &mask}) {
      const auto want = attention(q.to(DType::BF16), kv.to(DType::BF16), v.to(DType::BF16), m, scale).to_vector();
      EXPECT_EQ(attention_bf16(q, kv, v, m, scale).to_vector(), want) << "D=" << d;
      for (auto isa : variants()) {
        const auto ref = cpu::attention_with_isa(q.to(DType::BF16), kv.to(DType::BF16), v.to(DType::BF16), m, scale,
                                                 nullptr, isa).to_vector();
        EXPECT_EQ(cpu::attention_with_isa(q, kv, v, m, scale, nullptr, isa, true).to_vector(), ref)
            << "D=" << d << " " << isa_name(isa);
      }
    }
  }
}

// A bf16 output (for a consumer that rounds its input to bf16) is the f32 output rounded to nearest
// even, element for element, for every variant (the AMX kernel writes it itself) and head dim.
TEST(Attention, Bf16OutputIsTheRoundedF32Output) {
  for (int64_t d : {72, 64, 13}) {
    const Qkv t = make_qkv(2, 3, 45, 70, d, DType::F32, true, 60 + static_cast<uint32_t>(d));
    const Tensor mask = key_padding(2, 70, -10000.0f);
    for (const Tensor* m : {static_cast<const Tensor*>(nullptr), &mask})
      for (auto isa : variants()) {
        const Tensor want = cpu::attention_with_isa(t.q, t.k, t.v, m, 0.2f, nullptr, isa, true).to(DType::BF16);
        Tensor got = Tensor::empty({2, 45, 3 * d}, DType::BF16);
        cpu::attention_with_isa(t.q, t.k, t.v, m, 0.2f, &got, isa, true);
        for (int64_t i = 0; i < got.numel(); ++i)
          ASSERT_EQ(got.data<uint16_t>()[i], want.data<uint16_t>()[i]) << "D=" << d << " " << isa_name(isa) << " " << i;
      }
  }
}

void expect_attention_error(const std::function<void()>& fn, const std::string& needle);

TEST(Attention, SequencePartsEqualTheConcatenation) {
  // Joint attention over [image, text] given as parts (strided f32 head views) gives exactly the
  // rows of attention_bf16 on the concatenated tensors, for every variant (the AMX kernel reads the
  // parts, the others concatenate); one or two q parts, two k/v parts of other lengths.
  for (int64_t d : {72, 64, 128}) {
    const int64_t B = 2, H = 3;
    auto part = [&](int64_t s, uint32_t seed) {
      return random_tensor({B, s, H, d}, 2.0f, seed).permute({0, 2, 1, 3});
    };
    const std::vector<Tensor> q = {part(70, 1), part(45, 2)}, k = {part(300, 3), part(45, 4)},
                              v = {part(300, 5), part(45, 6)};
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    const Tensor qc = concat(q, 2), kc = concat(k, 2), vc = concat(v, 2);
    for (auto isa : std::vector<AttentionIsa>{AttentionIsa::Auto, AttentionIsa::Amx, AttentionIsa::Avx512,
                                              AttentionIsa::Avx2}) {
      if (!cpu::attention_isa_available(isa)) continue;
      const Tensor whole = cpu::attention_with_isa(qc, kc, vc, nullptr, scale, nullptr, isa, true);
      const std::vector<Tensor> parts = cpu::attention_parts_with_isa(q, k, v, scale, isa);
      ASSERT_EQ(parts.size(), 2u);
      EXPECT_EQ(parts[0].to_vector(), whole.slice(1, 0, 70).to_vector()) << "D=" << d << " " << isa_name(isa);
      EXPECT_EQ(parts[1].to_vector(), whole.slice(1, 70, 115).to_vector()) << "D=" << d << " " << isa_name(isa);
      const int saved = num_threads();
      set_num_threads(2);  // query rows split across threads, across the part boundary
      const std::vector<Tensor> two = cpu::attention_parts_with_isa(q, k, v, scale, isa);
      set_num_threads(saved);
      EXPECT_EQ(two[0].to_vector(), parts[0].to_vector()) << "threads, D=" << d;
      EXPECT_EQ(two[1].to_vector(), parts[1].to_vector()) << "threads, D=" << d;
      const std::vector<Tensor> one = cpu::attention_parts_with_isa({qc}, k, v, scale, isa);
      ASSERT_EQ(one.size(), 1u);
      EXPECT_EQ(one[0].to_vector(), whole.to_vector()) << "D=" << d << " " << isa_name(isa);
    }
    expect_close(attention_bf16_parts(q, k, v, scale)[1],
                 attention_reference(qc.to(DType::BF16), kc.to(DType::BF16), vc.to(DType::BF16), nullptr, scale)
                     .slice(1, 70, 115)
                     .contiguous(),
                 std::ldexp(1.0f, -8) * 2.0f, "parts vs reference");
  }
  const Tensor a = random_tensor({1, 2, 5, 8}, 1.0f, 1), b8 = random_tensor({1, 2, 5, 16}, 1.0f, 1);
  expect_attention_error([&] { attention_bf16_parts({a}, {a, b8}, {a, b8}, 1.0f); }, "k and v");
  expect_attention_error([&] { attention_bf16_parts({a, a, a}, {a}, {a}, 1.0f); }, "parts");
}

TEST(Attention, ThreadCountDoesNotChangeResults) {
  // Rows are computed independently, so splitting heads/rows over threads is bit-exact.
  const Qkv t = make_qkv(1, 3, 150, 77, 72, DType::BF16, false, 41);
  const int saved = num_threads();
  set_num_threads(1);
  const auto one = attention(t.q, t.k, t.v, nullptr, 0.1f).to_vector();
  set_num_threads(2);
  const auto two = attention(t.q, t.k, t.v, nullptr, 0.1f).to_vector();
  set_num_threads(saved);
  EXPECT_EQ(one, two);
}

TEST(Attention, WritesIntoGivenOutput) {
  const Qkv t = make_qkv(2, 2, 17, 19, 16, DType::F32, false, 51);
  Tensor out = Tensor::full({2, 17, 32}, 123.0f);
  Tensor r = attention(t.q, t.k, t.v, nullptr, 0.25f, &out);
  EXPECT_EQ(r.raw_data(), out.raw_data());
  expect_close(out, attention_reference(t.q, t.k, t.v, nullptr, 0.25f), 1e-5f, "out param");
}

void expect_attention_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected qdit::Error containing " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[attention]"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Attention, RejectsBadArguments) {
  const Qkv t = make_qkv(1, 2, 4, 6, 8, DType::F32, false, 61);
  const Tensor kb = t.k.to(DType::BF16);
  expect_attention_error([&] { attention(t.q, kb, t.v, nullptr, 1.0f); }, "one dtype");
  const Tensor k3 = random_tensor({1, 2, 6, 9}, 1.0f, 1);
  expect_attention_error([&] { attention(t.q, k3, t.v, nullptr, 1.0f); }, "k and v");
  const Tensor v5 = random_tensor({1, 2, 5, 8}, 1.0f, 1);
  expect_attention_error([&] { attention(t.q, t.k, v5, nullptr, 1.0f); }, "k and v");
  const Tensor q3 = random_tensor({2, 4, 8}, 1.0f, 1);
  expect_attention_error([&] { attention(q3, t.k, t.v, nullptr, 1.0f); }, "4-D");
  const Tensor qt = random_tensor({1, 2, 8, 4}, 1.0f, 1).transpose(2, 3);
  expect_attention_error([&] { attention(qt, t.k, t.v, nullptr, 1.0f); }, "contiguous last dim");
  const Tensor qi = Tensor::zeros({1, 2, 4, 8}, DType::I32);
  expect_attention_error([&] { attention(qi, t.k, t.v, nullptr, 1.0f); }, "f32 or bf16");
  const Tensor bad_mask = Tensor::zeros({1, 1, 4, 5}, DType::F32);
  expect_attention_error([&] { attention(t.q, t.k, t.v, &bad_mask, 1.0f); }, "mask");
  const Tensor bf_mask = Tensor::zeros({1, 1, 4, 6}, DType::BF16);
  expect_attention_error([&] { attention(t.q, t.k, t.v, &bf_mask, 1.0f); }, "mask");
  Tensor bad_out = Tensor::zeros({1, 4, 8}, DType::F32);
  expect_attention_error([&] { attention(t.q, t.k, t.v, nullptr, 1.0f, &bad_out); }, "out");
}

}  // namespace
}  // namespace qdit::kernels
