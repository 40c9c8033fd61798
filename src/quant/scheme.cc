#include "qdit/quant/scheme.h"

#include "qdit/core/error.h"

namespace qdit::quant {

const Tensor& QuantizedWeight::part(const std::string& name) const {
  auto it = parts.find(name);
  if (it == parts.end()) fail("[quant] ", scheme, ": missing part '", name, "'");
  return it->second;
}

size_t QuantizedWeight::bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : parts) n += t.nbytes();
  return n;
}

Tensor Scheme::dequantize(const QuantizedWeight& q) const {
  validate(q);
  Tensor out = Tensor::empty({q.out, q.in}, DType::F32);
  decoder(q)->decode_rows(0, q.out, out.data<float>());
  return out;
}

QuantizedWeight quantize_weight(const Scheme& s, const Tensor& w) {
  QDIT_CHECK(w.dim() == 2, "[quant] ", s.name(), ": weight must be [out, in], got ", w.desc());
  QDIT_CHECK(s.applies_to(w.size(0), w.size(1)), "[quant] ", s.name(), " does not apply to a [", w.size(0), ", ",
             w.size(1), "] weight");
  QDIT_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::BF16 || w.dtype() == DType::F16, "[quant] ", s.name(),
             ": weight dtype ", dtype_name(w.dtype()), " is not f32/bf16/f16");
  return s.quantize(w);
}

void expect_part(const QuantizedWeight& q, const std::string& name, DType dtype, const Shape& shape) {
  const Tensor& t = q.part(name);
  QDIT_CHECK(t.dtype() == dtype && t.shape() == shape, "[quant] ", q.scheme, " part '", name, "': expected ",
             dtype_name(dtype), " ", shape_str(shape), ", found ", t.desc());
}

}  // namespace qdit::quant
