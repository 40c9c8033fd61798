// What a model needs to know while it builds its modules: the compute dtype and how to turn a
// bound Linear weight into a kernel (float, or a quantization scheme chosen per module path).
#pragma once
#include <memory>
#include <string>

#include "qdit/core/tensor.h"
#include "qdit/kernels/gemm.h"

namespace qdit::nn {

class LinearFactory {
 public:
  virtual ~LinearFactory() = default;
  // path: full module path ("transformer_blocks.0.attn.to_q"); weight [out, in]; bias may be undefined.
  virtual std::unique_ptr<kernels::LinearKernel> make(const std::string& path, const Tensor& weight,
                                                      const Tensor& bias, DType compute) const;
};

struct ModuleContext {
  DType compute = DType::F32;
  std::shared_ptr<const LinearFactory> linear_factory = std::make_shared<LinearFactory>();
};

}  // namespace qdit::nn
