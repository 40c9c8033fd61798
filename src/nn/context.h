// What a model needs to know while it builds its modules: the compute dtype and how to turn a
// bound Linear weight into a kernel (float, or a quantization scheme chosen per module path).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/kernels/gemm.h"

namespace qdit::nn {

class LinearFactory {
 public:
  virtual ~LinearFactory() = default;
  // path: full module path ("transformer_blocks.0.attn.to_q"); weight [out, in]; bias may be undefined.
  virtual std::unique_ptr<kernels::LinearKernel> make(const std::string& path, const Tensor& weight,
                                                      const Tensor& bias, DType compute) const;
  // Pre-quantized checkpoints: a factory that reads_parts() builds a Linear whose "weight" is
  // absent from the stored parts under its path ("_weight_qdata", "weight.absmax", ...).
  virtual bool reads_parts() const { return false; }
  // A Linear fused from several modules (`members`, e.g. to_q/to_k/to_v) under `path`; quantizing
  // factories keep it float when any member is excluded.
  virtual std::unique_ptr<kernels::LinearKernel> make_fused(const std::string& path,
                                                            const std::vector<std::string>& members,
                                                            const Tensor& weight, const Tensor& bias,
                                                            DType compute) const {
    return make(path, weight, bias, compute);
  }
  virtual std::unique_ptr<kernels::LinearKernel> make_from_parts(const std::string& path,
                                                                 std::map<std::string, Tensor> parts, int64_t in,
                                                                 int64_t out, const Tensor& bias, DType compute) const;
  // Checks stored parts (names, dtypes, shapes) without building a kernel: how streamed blocks
  // are validated at load. Throws like make_from_parts would.
  virtual void check_parts(const std::string& path, std::map<std::string, Tensor> parts, int64_t in, int64_t out) const;
};

struct ModuleContext {
  DType compute = DType::F32;
  bool fuse_qkv = false;  // q/k/v (and cross-attention k/v) projections as one GEMM (nn::LinearGroup)
  std::shared_ptr<const LinearFactory> linear_factory = std::make_shared<LinearFactory>();
  // Blocks per group when a model's block stack is streamed (built one group at a time just
  // before use, dropped after, see nn/lazy_blocks.h); 0 keeps every block resident.
  int stream_group = 0;
};

}  // namespace qdit::nn
