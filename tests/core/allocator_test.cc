#include <gtest/gtest.h>

#include <cstdint>

#include "qdit/core/tensor.h"

using namespace qdit;

TEST(Allocator, TracksLiveAndPeakByTag) {
  auto& a = CpuAllocator::instance();
  a.reset_peaks();
  const MemStats before = a.stats();
  const auto w = static_cast<size_t>(MemTag::Weights);
  {
    Tensor x = Tensor::empty({1000}, DType::F32, MemTag::Weights);
    Tensor y = Tensor::empty({3 << 20}, DType::U8, MemTag::Weights);  // huge-page path
    EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw_data()) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(y.raw_data()) % (2u << 20), 0u);
    EXPECT_EQ(a.stats().live[w], before.live[w] + 4000 + (3u << 20));
  }
  const MemStats after = a.stats();
  EXPECT_EQ(after.live[w], before.live[w]);
  EXPECT_EQ(after.peak[w], before.live[w] + 4000 + (3u << 20));
  EXPECT_GE(after.total_peak, after.peak[w]);
  EXPECT_GT(process_peak_rss(), 0u);
}
