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

struct StackWeights {
  std::string name;             // "transformer_blocks", "encoder.block", ...
  std::vector<size_t> resident;  // per block
  std::vector<size_t> source;    // checkpoint bytes per block
  size_t max_group(int group) const;         // largest resident sum over `group` consecutive blocks
  size_t max_group_source(int group) const;  // the same for checkpoint bytes
};

struct ComponentWeights {
  std::string name, class_name, quant = "none";  // quant as the generate summary names it
  size_t checkpoint_bytes = 0;
  size_t other_resident = 0, other_source = 0;  // outside the block stacks
  std::vector<StackWeights> stacks;
  // Bytes a GEMM call allocates per element of its input (bf16 copy, int8 codes, quantize-
  // dequantize copy), for the activation estimates.
  double gemm_input_bytes = 0;

  size_t resident() const;  // everything built
  size_t largest_source() const;  // the largest block (or the rest) read while building
  // Weights alive at the worst moment of a streamed pass: the rest, the group computing, the group
  // being prefetched (plus the pending next-pass group of every other stack), and the checkpoint
  // pages of the group being built.
  size_t streamed_peak(int group) const;
};

ComponentWeights estimate_component_weights(const io::ModelFolder& folder, const std::string& component,
                                            const quant::PipelineQuantConfig& quant, DType compute);

// Resident bytes of one Linear [out, in] stored as `stored` built for `compute`, quantized with
// `scheme` ("" = float): measured on small stand-in weights with the real kernels and scaled.
size_t linear_resident_bytes(const std::string& scheme, DType stored, DType compute, int64_t out, int64_t in);

}  // namespace qdit::runtime
