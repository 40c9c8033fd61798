// A quantization scheme is data (name, bits, granularity) plus a reference codec: quantize a
// Linear weight [out, in] into the named parts the Python library writes (its state-dict suffixes,
// so a saved qdit checkpoint uses the ecosystem's key layout), and decode rows of it back to f32.
// Kernels (quant/quantized_linear.h) are chosen from the scheme's properties, not from its name.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/kernels/gemm.h"

namespace qdit::quant {

// How a scheme treats the activation at run time.
enum class ActivationQuant {
  None,             // weight-only: decode tiles of the weight, float GEMM
  Int8PerToken,     // torchao int8dq: symmetric per-token int8, int8 x int8 GEMM
  Int8PerTokenAsym, // torchao int4dq: asymmetric per-token int8 (emulated: quantize-dequantize)
  Fp8PerTensor,     // torchao float8dq: one e4m3fn scale for the whole activation (emulated)
  Fp8PerRow,        // torchao float8dq_row: one e4m3fn scale per token (emulated)
  LlmInt8,          // bitsandbytes LLM.int8: outlier columns in float, the rest int8
};

struct QuantizedWeight {
  std::string scheme;       // registry name ("int8wo", "nf4", ...)
  int64_t out = 0, in = 0;  // logical [out, in]
  DType source_dtype = DType::F32;
  std::map<std::string, Tensor> parts;  // state-dict suffixes after the module path

  // Throws "[quant] <scheme>: missing part <name>" when absent.
  const Tensor& part(const std::string& name) const;
  bool has(const std::string& name) const { return parts.count(name) != 0; }
  size_t bytes() const;  // stored bytes of all parts
};

class Scheme {
 public:
  virtual ~Scheme() = default;
  virtual std::string name() const = 0;
  virtual std::string library() const = 0;  // "quanto", "torchao", "bitsandbytes"
  virtual double bits() const = 0;          // bits per code (scales not counted)
  virtual ActivationQuant activation() const { return ActivationQuant::None; }
  // False when a Linear of this shape cannot take the scheme (e.g. its group size does not
  // divide in_features); such layers stay in float, as the Python libraries leave them.
  virtual bool applies_to(int64_t out, int64_t in) const { return out > 0 && in > 0; }
  // The reference codec, the definition (scalar, following the library):
  // w: [out, in] f32, bf16 or f16; the arithmetic follows the library in w's dtype.
  virtual QuantizedWeight reference_quantize(const Tensor& w) const = 0;
  // A decoder producing f32 rows of the dequantized weight on demand (it shares q's parts);
  // validate(q) has been called by then.
  virtual std::unique_ptr<kernels::WeightRowDecoder> reference_decoder(const QuantizedWeight& q) const = 0;
  // What qdit runs: vectorised, multi-threaded equivalents where a scheme has them (bit-identical
  // codes, scales and decoded values; tests compare them with the reference), else the reference.
  virtual QuantizedWeight quantize(const Tensor& w) const { return reference_quantize(w); }
  virtual std::unique_ptr<kernels::WeightRowDecoder> decoder(const QuantizedWeight& q) const {
    return reference_decoder(q);
  }
  // Checks the parts' dtypes and shapes (a loaded checkpoint); throws naming the part.
  virtual void validate(const QuantizedWeight& q) const = 0;
  // The JSON-able attributes stored with a checkpoint's quantization_config (group size ...).
  virtual std::map<std::string, std::string> attributes() const { return {}; }

  Tensor dequantize(const QuantizedWeight& q) const;  // f32 [out, in]
};

// Registry of every built-in scheme by user-facing name (aliases included).
const Scheme& find_scheme(const std::string& name);  // throws listing the known names
bool has_scheme(const std::string& name);
std::vector<std::string> scheme_names();  // canonical names, no aliases

// Quantizes a [out, in] weight with a scheme (checks applies_to, naming the shape).
QuantizedWeight quantize_weight(const Scheme& s, const Tensor& w);

// Checks one part's dtype and shape; used by the schemes' validate().
void expect_part(const QuantizedWeight& q, const std::string& name, DType dtype, const Shape& shape);

}  // namespace qdit::quant
