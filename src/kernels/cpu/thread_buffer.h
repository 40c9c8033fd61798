// A per-thread workspace that grows to the largest request and lives until the thread exits: the
// decoded weights of the largest layer (TiledLinear) or its decoded panels (AmxQ4Gemm). Page faults
// on a fresh buffer every forward would cost as much as the decode that fills it.
#pragma once
#include <cstddef>

#include "qdit/core/allocator.h"

namespace qdit::kernels::cpu {

class ThreadBuffer {
 public:
  ThreadBuffer() = default;
  ThreadBuffer(const ThreadBuffer&) = delete;
  ThreadBuffer& operator=(const ThreadBuffer&) = delete;
  ~ThreadBuffer() { CpuAllocator::instance().deallocate(p_, bytes_, MemTag::Workspace); }
  void* get(size_t bytes) {
    if (bytes > bytes_) {
      CpuAllocator::instance().deallocate(p_, bytes_, MemTag::Workspace);
      p_ = nullptr;
      bytes_ = 0;
      p_ = CpuAllocator::instance().allocate(bytes, MemTag::Workspace);
      bytes_ = bytes;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace qdit::kernels::cpu
