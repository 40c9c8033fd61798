// Bit-faithful replicas of the few numpy / PyTorch array builders that diffusers' schedulers
// use (np.linspace, np.arange, np.round, torch.linspace at float32), so the schedulers here
// produce the same timesteps and sigmas as diffusers, not just close ones. Used by schedulers/.
#pragma once
#include <cstdint>
#include <vector>

namespace qdit::schedulers {

// np.linspace(start, stop, num) in float64: y[i] = i*step + start, y[num-1] = stop exactly.
std::vector<double> np_linspace(double start, double stop, int64_t num);

// np.arange(start, stop, step) in float64 (length ceil((stop-start)/step), values start + i*delta
// with delta = (start + step) - start, as numpy's fill does).
std::vector<double> np_arange(double start, double stop, double step);

// np.round / np.rint: round half to even.
double np_round(double x);

// torch.linspace(start, end, steps, dtype=float32) on CPU (PyTorch 1.13-2.x kernel): the step is
// computed in float, the first half counts up from start and the second half down from end.
// `vector_width` > 1 mimics the vectorised kernel (contiguous chunks of 2*width elements built
// as base + j*step); 0 gives the scalar formula for every element.
std::vector<float> torch_linspace_f32(double start, double end, int64_t steps, int vector_width = 0);

}  // namespace qdit::schedulers
