// Linears that read the same input (an attention's q/k/v, or the k/v of a cross-attention).
// With ModuleContext::fuse_qkv they run as one GEMM over their weights concatenated along the
// output dim — fused before quantizing, as diffusers' fuse_qkv_projections does, so an int8dq
// activation is quantized once for all three; the outputs are column slices of one result.
// Fusion is skipped for pre-quantized checkpoints (their parts are stored per projection).
#pragma once
#include <string>
#include <vector>

#include "qdit/nn/linear.h"

namespace qdit::nn {

class LinearGroup {
 public:
  LinearGroup() = default;
  // names: the member Linears under `parent` ("to_q", "to_k", "to_v"); fused_name: the path the
  // fused Linear reports ("to_qkv"); outs: each member's out_features.
  LinearGroup(const WeightBinder& parent, const std::vector<std::string>& names, const std::string& fused_name,
              int64_t in, const std::vector<int64_t>& outs, bool bias, const ModuleContext& ctx);

  // One output per member, [..., out_i] f32 (contiguous copies of the fused result's slices).
  std::vector<Tensor> operator()(const LinearInput& x) const;
  // The outputs split as [..., out_i / unit, unit] (unit divides every out_i, e.g. a head dim):
  // with fusion these are strided views into the one GEMM result, not copies of its slices, for
  // consumers that read strided rows (Flux's fused q/k norm + rotary kernel, the attention's v).
  // prefer: as for Linear (BF16 where the kernel writes it).
  std::vector<Tensor> views(const LinearInput& x, int64_t unit, DType prefer = DType::F32) const;
  bool fused() const { return fused_.defined(); }
  size_t weight_bytes() const;

 private:
  std::vector<Linear> members_;
  Linear fused_;
  std::vector<int64_t> outs_;
};

}  // namespace qdit::nn
