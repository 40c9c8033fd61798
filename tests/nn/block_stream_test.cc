// nn::LazyBlocks / nn::BlockStream: a streamed stack computes exactly what the resident stack
// computes (float, quantized on load), builds on the prefetch thread, never holds more than two
// groups, hands errors from either thread to the caller, and survives concurrent callers. This
// test also runs under ThreadSanitizer (scripts/tsan.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>

#include "qdit/core/error.h"
#include "qdit/io/safetensors.h"
#include "qdit/io/weight_source.h"
#include "qdit/nn/lazy_blocks.h"
#include "qdit/nn/linear.h"
#include "qdit/nn/quantizing_factory.h"

namespace qdit::nn {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDim = 64, kBlocks = 5, kRows = 24;

std::atomic<int> g_live{0}, g_max_live{0};

// Counts live blocks (copies share one token).
struct LiveToken {
  LiveToken() {
    const int now = ++g_live;
    int seen = g_max_live.load();
    while (now > seen && !g_max_live.compare_exchange_weak(seen, now)) {
    }
  }
  ~LiveToken() { --g_live; }
};

struct Block {
  Linear fc1, fc2;
  std::thread::id built_on;
  std::shared_ptr<LiveToken> token;
  size_t weight_bytes() const { return fc1.weight_bytes() + fc2.weight_bytes(); }
  // x += fc2(gelu(fc1(x)))
  void forward(Tensor& x) const {
    kernels::GemmOptions act{kernels::Activation::GeluTanh, false}, acc{kernels::Activation::None, true};
    fc2.forward_into(fc1(x, act), x, acc);
  }
};

class BlockStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = (fs::temp_directory_path() / ("qdit_block_stream_" + std::to_string(::getpid()) + ".safetensors")).string();
    std::vector<std::pair<std::string, Tensor>> tensors;
    uint32_t state = 12345;
    auto fill = [&](const Shape& s, float scale) {
      Tensor t = Tensor::empty(s, DType::F32);
      for (int64_t i = 0; i < t.numel(); ++i) {
        state = state * 1664525u + 1013904223u;
        t.data<float>()[i] = scale * (static_cast<float>(state >> 8) / 16777216.0f - 0.5f);
      }
      return t;
    };
    for (int64_t i = 0; i < kBlocks; ++i)
      for (const char* fc : {"fc1", "fc2"}) {
        const std::string p = "blocks." + std::to_string(i) + "." + fc + ".";
        tensors.emplace_back(p + "weight", fill({kDim, kDim}, 0.3f));
        tensors.emplace_back(p + "bias", fill({kDim}, 0.1f));
      }
    io::save_safetensors(path_, tensors);
  }
  static void TearDownTestSuite() { fs::remove(path_); }

  static std::shared_ptr<const io::WeightSource> source() { return io::SafetensorsWeights::open(path_); }

  static LazyBlocks<Block> stack(const ModuleContext& ctx, std::function<void(int64_t)> before_build = {}) {
    WeightBinder root(source(), "test");
    return LazyBlocks<Block>(root, "blocks", kBlocks, ctx,
                             [before_build](const WeightBinder& b, int64_t i, const ModuleContext& c) {
                               if (before_build) before_build(i);
                               Block blk;
                               blk.fc1 = Linear(b, "fc1", kDim, kDim, true, c);
                               blk.fc2 = Linear(b, "fc2", kDim, kDim, true, c);
                               blk.built_on = std::this_thread::get_id();
                               blk.token = std::make_shared<LiveToken>();
                               return blk;
                             });
  }

  static Tensor input() {
    Tensor x = Tensor::empty({kRows, kDim}, DType::F32);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
    return x;
  }

  static Tensor run(const LazyBlocks<Block>& blocks) {
    Tensor x = input();
    blocks.for_each([&](const Block& b) { b.forward(x); });
    return x;
  }

  static ModuleContext context(int group, const std::string& scheme = "") {
    ModuleContext ctx;
    ctx.stream_group = group;
    if (!scheme.empty()) ctx.linear_factory = std::make_shared<QuantizingLinearFactory>(quant::ComponentQuant{scheme, {}});
    return ctx;
  }

  static std::string path_;
};

std::string BlockStreamTest::path_;

TEST_F(BlockStreamTest, StreamedStacksComputeWhatResidentStacksCompute) {
  for (const std::string scheme : {"", "int8dq", "int8wo", "nf4"}) {
    const std::vector<float> ref = run(stack(context(0, scheme))).to_vector();
    for (int group : {1, 2, 3, 5, 9}) {
      SCOPED_TRACE("scheme '" + scheme + "' group " + std::to_string(group));
      LazyBlocks<Block> streamed = stack(context(group, scheme));
      EXPECT_TRUE(streamed.streamed());
      EXPECT_EQ(streamed.weight_bytes(), 0u);  // nothing is resident between passes
      for (int pass = 0; pass < 3; ++pass) EXPECT_EQ(run(streamed).to_vector(), ref) << "pass " << pass;
    }
  }
}

TEST_F(BlockStreamTest, ResidentStacksHoldEveryBlock) {
  LazyBlocks<Block> resident = stack(context(0));
  EXPECT_FALSE(resident.streamed());
  EXPECT_EQ(resident.size(), kBlocks);
  EXPECT_EQ(resident.weight_bytes(), static_cast<size_t>(kBlocks * 2 * (kDim * kDim + kDim) * 4));
}

TEST_F(BlockStreamTest, BuildsOnThePrefetchThreadAndHoldsAtMostTwoGroups) {
  for (int group : {1, 2}) {
    LazyBlocks<Block> streamed = stack(context(group));
    g_max_live = g_live.load();
    const int base = g_live.load();
    std::set<std::thread::id> builders;
    int64_t seen = 0;
    for (int pass = 0; pass < 2; ++pass) {
      Tensor x = input();
      streamed.for_each([&](const Block& b) {
        builders.insert(b.built_on);
        b.forward(x);
        ++seen;
        // The group running and at most the one being prefetched.
        EXPECT_LE(g_live.load() - base, 2 * group);
      });
    }
    EXPECT_EQ(seen, 2 * kBlocks);
    EXPECT_LE(g_max_live.load() - base, 2 * group);
    ASSERT_EQ(builders.size(), 1u);
    EXPECT_NE(*builders.begin(), std::this_thread::get_id());
  }
}

TEST_F(BlockStreamTest, ValidationBuildsNoKernels) {
  // Streamed blocks are checked at load with a shape-only factory: nothing is quantized then.
  std::atomic<int> quantized{0};
  ModuleContext ctx = context(2);
  ctx.linear_factory = std::make_shared<QuantizingLinearFactory>(
      quant::ComponentQuant{"int8wo", {}}, [&](const std::string&, const quant::QuantizedWeight&) { ++quantized; });
  LazyBlocks<Block> streamed = stack(ctx);
  EXPECT_EQ(quantized.load(), 0);
  run(streamed);
  EXPECT_GE(quantized.load(), 2 * kBlocks);  // every Linear once (plus the wrapped prefetch of group 0)
}

TEST_F(BlockStreamTest, BuildErrorsReachTheCallerAndTheStackRecovers) {
  std::atomic<bool> fail_block3{false};
  LazyBlocks<Block> streamed = stack(context(1), [&](int64_t i) {
    if (i == 3 && fail_block3) fail("[test] block 3 cannot be built");
  });
  const std::vector<float> ref = run(streamed).to_vector();
  fail_block3 = true;
  EXPECT_THROW(run(streamed), Error);
  fail_block3 = false;
  EXPECT_EQ(run(streamed).to_vector(), ref);
}

TEST_F(BlockStreamTest, CallerErrorsLeaveTheStackUsable) {
  LazyBlocks<Block> streamed = stack(context(2));
  const std::vector<float> ref = run(streamed).to_vector();
  int n = 0;
  EXPECT_THROW(streamed.for_each([&](const Block&) {
    if (++n == 3) fail("[test] caller gives up");
  }),
               Error);
  EXPECT_EQ(run(streamed).to_vector(), ref);
}

TEST_F(BlockStreamTest, ConcurrentCallersAreSerialised) {
  LazyBlocks<Block> streamed = stack(context(2));
  const std::vector<float> ref = run(streamed).to_vector();
  std::vector<std::vector<float>> outs(3);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < outs.size(); ++t) threads.emplace_back([&, t] { outs[t] = run(streamed).to_vector(); });
  for (auto& th : threads) th.join();
  for (const auto& o : outs) EXPECT_EQ(o, ref);
}

TEST_F(BlockStreamTest, BadBlocksFailAtConstructionInBothModes) {
  for (int group : {0, 2}) {
    WeightBinder root(source(), "test");
    EXPECT_THROW(
        {
          LazyBlocks<Block> b(root, "blocks", kBlocks + 1, context(group),
                              [](const WeightBinder& wb, int64_t, const ModuleContext& c) {
                                Block blk;
                                blk.fc1 = Linear(wb, "fc1", kDim, kDim, true, c);
                                blk.fc2 = Linear(wb, "fc2", kDim, kDim, true, c);
                                return blk;
                              });
          root.finish();
        },
        Error);
  }
}

}  // namespace
}  // namespace qdit::nn
