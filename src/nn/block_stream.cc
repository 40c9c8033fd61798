#include "qdit/nn/block_stream.h"

#include "qdit/core/error.h"
#include "qdit/core/parallel.h"

namespace qdit::nn {

BlockStream::BlockStream(int64_t groups, std::function<Group(int64_t)> build, std::function<void(int64_t)> release)
    : groups_(groups), build_(std::move(build)), release_(std::move(release)) {
  QDIT_CHECK(groups_ > 0, "[blocks] a block stream needs at least one group, got ", groups_);
  worker_ = std::thread([this] { worker_loop(); });
}

BlockStream::~BlockStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A prefetch for a pass that will never come is dropped if it has not started yet.
    job_ = {};
    has_job_ = false;
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void BlockStream::worker_loop() {
  // The caller's threads already fill the cores with GEMMs; the builder packs and quantizes on
  // one thread of its own (OpenMP's thread count is per thread, oneDNN follows it).
  set_num_threads(1);
  for (;;) {
    std::packaged_task<Group()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return has_job_ || stop_; });
      if (!has_job_) return;  // stopping with nothing queued
      job = std::move(job_);
      has_job_ = false;
    }
    job();  // exceptions land in the future
  }
}

void BlockStream::submit(int64_t g) {
  std::packaged_task<Group()> task([this, g] { return build_(g); });
  pending_ = task.get_future();
  pending_index_ = g;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = std::move(task);
    has_job_ = true;
  }
  cv_.notify_one();
}

BlockStream::Group BlockStream::take(int64_t g) {
  if (pending_index_ != g) {
    // A pass that failed part-way left another group in flight: finish and drop it first.
    if (pending_index_ >= 0) {
      pending_.wait();
      pending_ = {};
      release_(pending_index_);
    }
    submit(g);
  }
  pending_index_ = -1;
  return pending_.get();  // rethrows a build error
}

void BlockStream::run(const std::function<void(const Group&, int64_t)>& fn) {
  std::lock_guard<std::mutex> lock(run_mu_);
  for (int64_t g = 0; g < groups_; ++g) {
    Group group = take(g);
    // Prefetch the next group (wrapping to 0 for the next pass) while this one computes. With a
    // single group there is nothing to overlap: it is rebuilt at the next pass instead of kept.
    if (groups_ > 1) submit((g + 1) % groups_);
    try {
      fn(group, g);
    } catch (...) {
      group.reset();
      release_(g);
      throw;
    }
    group.reset();
    release_(g);
  }
}

}  // namespace qdit::nn
