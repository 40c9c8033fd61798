#include "qdit/nn/linear_group.h"

#include "qdit/core/error.h"
#include "qdit/kernels/layout.h"

namespace qdit::nn {

LinearGroup::LinearGroup(const WeightBinder& parent, const std::vector<std::string>& names,
                         const std::string& fused_name, int64_t in, const std::vector<int64_t>& outs, bool bias,
                         const ModuleContext& ctx)
    : outs_(outs) {
  QDIT_CHECK(names.size() == outs.size() && !names.empty(), "[linear group] ", parent.path(fused_name),
             ": names and output sizes differ in number");
  if (!ctx.fuse_qkv || ctx.linear_factory->reads_parts()) {
    for (size_t i = 0; i < names.size(); ++i) members_.emplace_back(parent, names[i], in, outs[i], bias, ctx);
    return;
  }
  std::vector<Tensor> ws, bs;
  std::vector<std::string> paths;
  for (size_t i = 0; i < names.size(); ++i) {
    const WeightBinder b = parent.sub(names[i]);
    ws.push_back(b.get("weight", {outs[i], in}));
    if (bias) bs.push_back(b.get("bias", {outs[i]}));
    paths.push_back(parent.path(names[i]));
  }
  for (const auto& t : ws)
    if (!t.defined()) return;  // the binder reports what is missing
  for (const auto& t : bs)
    if (!t.defined()) return;
  // Same dtype for the concatenation (checkpoints normally store one dtype per component).
  bool mixed = false;
  for (const auto& t : ws) mixed |= t.dtype() != ws[0].dtype();
  if (mixed)
    for (auto& t : ws) t = t.to(DType::F32);
  Tensor w = kernels::concat(ws, 0);
  Tensor b = bias ? kernels::concat(bs, 0).to(DType::F32) : Tensor();
  fused_ = Linear::from_weights(parent.path(fused_name), paths, w, b, ctx);
}

std::vector<Tensor> LinearGroup::operator()(const LinearInput& x) const {
  std::vector<Tensor> out;
  if (!fused()) {  // the members share the f32 rows (a deferred norm runs once)
    for (const Linear& l : members_) out.push_back(l(x.tensor()));
    return out;
  }
  const Tensor y = fused_(x);
  int64_t col = 0;
  for (int64_t n : outs_) {
    out.push_back(y.slice(-1, col, col + n).contiguous());
    col += n;
  }
  return out;
}

std::vector<Tensor> LinearGroup::views(const LinearInput& x, int64_t unit, DType prefer) const {
  int64_t total = 0;
  for (int64_t n : outs_) {
    QDIT_CHECK(unit > 0 && n % unit == 0, "[linear group] output width ", n, " is not a multiple of ", unit);
    total += n;
  }
  auto split = [&](const Tensor& t, int64_t n) {
    Shape s = t.shape();
    s.back() = n / unit;
    s.push_back(unit);
    return t.reshape(s);
  };
  std::vector<Tensor> out;
  if (!fused()) {
    for (const Linear& l : members_) {
      const Tensor y = l(x.tensor(), {}, prefer);
      out.push_back(split(y, y.size(-1)));
    }
    return out;
  }
  // [..., total] -> [..., total / unit, unit], then each member is a range of the second-last dim.
  const Tensor y = split(fused_(x, {}, prefer), total);
  int64_t col = 0;
  for (int64_t n : outs_) {
    out.push_back(y.slice(-2, col / unit, (col + n) / unit));
    col += n;
  }
  return out;
}

size_t LinearGroup::weight_bytes() const {
  size_t n = fused_.weight_bytes();
  for (const Linear& l : members_) n += l.weight_bytes();
  return n;
}

}  // namespace qdit::nn
