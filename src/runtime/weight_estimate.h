// Weight memory of a model component predicted from its config and tensor headers alone (no
// tensor data is read): per tensor, what the model keeps once built (packed float copies,
// quantized codes, f32 norms and tables, mapped views) and what it reads from the checkpoint
// while building; per block of each block stack, so that streaming can be predicted too.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "qdit/core/dtype.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/quant/quant_config.h"

namespace qdit::runtime {

// Bytes per block: `tracked` is what CpuAllocator counts once built (packed copies, quantized
// codes, f32 tensors); `mapped` is checkpoint pages the built block keeps using as views (stored
// weight-only codes), in the RSS while it runs; `source` is the checkpoint bytes read to build it.
struct StackWeights {
  std::string name;  // "transformer_blocks", "encoder.block", ...
  std::vector<size_t> tracked, mapped, source;
  std::vector<size_t> transient;  // the largest conversion copy made while building the block
  size_t groups(int group) const { return (tracked.size() + group - 1) / group; }
  // Largest sum over one group of `group` consecutive blocks (groups start at block 0).
  static size_t max_group(const std::vector<size_t>& v, int group);
};

struct ComponentWeights {
  std::string name, class_name, quant = "none";  // quant as the generate summary names it
  size_t checkpoint_bytes = 0;
  size_t other_tracked = 0, other_mapped = 0, other_source = 0, other_transient = 0;  // outside the stacks
  std::vector<StackWeights> stacks;
  // Bytes a GEMM call allocates per element of its input (bf16 copy, int8 codes, quantize-
  // dequantize copy), for the activation estimates.
  double gemm_input_bytes = 0;

  size_t tracked() const;         // everything built
  size_t mapped() const;          // every view the built model reads
  size_t largest_source() const;  // the largest block (or the rest) read while building
  size_t largest_transient() const;  // the largest conversion copy made while building
  // Streamed (nn::BlockStream): CpuAllocator bytes at the worst moment of a pass (the group
  // running, the one being prefetched, the next-pass group every other stack keeps pending)...
  size_t streamed_tracked(int group) const;
  // ...and the checkpoint pages in the RSS then (views of the running group, pages of the group
  // being built).
  size_t streamed_mapped(int group) const;
};

ComponentWeights estimate_component_weights(const io::ModelFolder& folder, const std::string& component,
                                            const quant::PipelineQuantConfig& quant, DType compute);

// One Linear [out, in] stored as `stored`, built for `compute`, quantized with `scheme` ("" =
// float): the bytes its kernel keeps and the extra bytes alive while it is built, measured with
// the real kernels on small stand-in weights (CpuAllocator's peak is reset for that) and scaled.
struct LinearCost {
  size_t resident = 0, transient = 0;
};
LinearCost linear_cost(const std::string& scheme, DType stored, DType compute, int64_t out, int64_t in);

}  // namespace qdit::runtime
