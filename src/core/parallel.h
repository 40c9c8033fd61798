// parallel_for over OpenMP's thread pool: the same workers oneDNN uses (Debian's oneDNN is built
// for the OpenMP runtime), so GEMMs and qdit's own kernels never oversubscribe the cores.
#pragma once
#include <cstdint>
#include <functional>

namespace qdit {

// Number of worker threads (default: all cores, or QDIT_NUM_THREADS / OMP_NUM_THREADS).
int num_threads();
void set_num_threads(int n);
// Index of the calling thread in the running parallel_for (0 outside one): lets a caller give
// each worker a slot of one buffer allocated before the loop.
int thread_index();

// Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` items.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace qdit
