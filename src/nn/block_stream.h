// The scheduling half of block streaming ("group offload"): a model's block stack is split into
// groups; while the caller computes with group g, a worker thread builds group g + 1 (packing or
// quantizing its Linear weights from the mapped checkpoint), and group g is dropped as soon as the
// caller is done with it. At most two groups are alive at any time. After the last group the
// worker already builds group 0 again, for the next call (the next denoising step).
// Groups are type-erased here; nn::LazyBlocks (lazy_blocks.h) gives them their block type.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

namespace qdit::nn {

class BlockStream {
 public:
  using Group = std::shared_ptr<const void>;
  // build(g) runs on the worker thread only; release(g) runs on the caller's thread after group g
  // was dropped (it hands back the checkpoint pages the group read).
  BlockStream(int64_t groups, std::function<Group(int64_t)> build, std::function<void(int64_t)> release);
  ~BlockStream();  // waits for a build in flight
  BlockStream(const BlockStream&) = delete;
  BlockStream& operator=(const BlockStream&) = delete;

  // Calls fn(group, g) for g = 0 .. groups-1 in order. Calls are serialised (one pass at a time);
  // an exception from a build or from fn propagates after the worker is idle again.
  void run(const std::function<void(const Group&, int64_t)>& fn);
  int64_t groups() const { return groups_; }

 private:
  void submit(int64_t g);  // starts building g on the worker (nothing else may be pending)
  Group take(int64_t g);   // the pending build of g (submitted if it was not), waited for
  void worker_loop();

  const int64_t groups_;
  std::function<Group(int64_t)> build_;
  std::function<void(int64_t)> release_;

  std::mutex run_mu_;  // one pass at a time
  int64_t pending_index_ = -1;
  std::future<Group> pending_;

  std::mutex mu_;  // guards job_ / stop_ between the caller and the worker
  std::condition_variable cv_;
  std::packaged_task<Group()> job_;
  bool has_job_ = false, stop_ = false;
  std::thread worker_;
};

}  // namespace qdit::nn
