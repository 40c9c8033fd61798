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

TEST(Allocator, RecyclingScopeHandsFreedBuffersOutAgainAndReleasesThemAtTheEnd) {
  auto& a = CpuAllocator::instance();
  const MemStats before = a.stats();
  const auto act = static_cast<size_t>(MemTag::Activations);
  void *small = nullptr, *huge = nullptr, *weight = nullptr;
  {
    RecyclingScope scope;
    const size_t n0 = a.system_allocations();
    {
      Tensor s = Tensor::empty({1000}, DType::F32);
      Tensor h = Tensor::empty({5 << 20}, DType::U8, MemTag::Workspace);
      Tensor w = Tensor::empty({1000}, DType::F32, MemTag::Weights);
      small = s.raw_data(), huge = h.raw_data(), weight = w.raw_data();
    }
    EXPECT_EQ(a.system_allocations(), n0 + 3);
    EXPECT_EQ(a.stats().live[act], before.live[act]);  // kept buffers are not live
    {
      // The same sizes (after rounding) come back from the scope; the weight goes to the system.
      Tensor s = Tensor::empty({999}, DType::F32);  // 3996 bytes round to the same 4032
      Tensor h = Tensor::empty({5 << 20}, DType::U8, MemTag::Activations);
      Tensor w = Tensor::empty({1000}, DType::F32, MemTag::Weights);
      EXPECT_EQ(s.raw_data(), small);
      EXPECT_EQ(h.raw_data(), huge);
      EXPECT_EQ(a.system_allocations(), n0 + 4);
      EXPECT_EQ(a.stats().live[act], before.live[act] + 3996 + (5u << 20));
      Tensor other = Tensor::empty({2000}, DType::F32);  // no kept buffer of this size
      EXPECT_EQ(a.system_allocations(), n0 + 5);
      (void)w;
    }
    {
      RecyclingScope nested;  // nesting keeps the buffers until the outer scope ends
    }
    const size_t n1 = a.system_allocations();
    Tensor h = Tensor::empty({5 << 20}, DType::U8, MemTag::Activations);
    EXPECT_EQ(h.raw_data(), huge);
    EXPECT_EQ(a.system_allocations(), n1);
  }
  // After the scope, freed buffers go back to the system: a new allocation is a system one.
  const size_t n2 = a.system_allocations();
  { Tensor s = Tensor::empty({1000}, DType::F32); }
  { Tensor s = Tensor::empty({1000}, DType::F32); }
  EXPECT_EQ(a.system_allocations(), n2 + 2);
  EXPECT_EQ(a.stats().total_live, before.total_live);
  (void)weight;
}

TEST(Allocator, MachineMemoryIsKnownAndHoldsThisProcess) {
  const size_t machine = machine_memory_bytes();
  EXPECT_GT(machine, process_current_rss());
  EXPECT_GT(machine, size_t{64} << 20);
}
