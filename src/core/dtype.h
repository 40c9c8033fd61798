// Element types a Tensor can hold. Quantized formats (codes + scales) are not dtypes: they live
// in quant/. fp8 appears here only as a plain storage/cast type.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qdit {

enum class DType : uint8_t { F32, F16, BF16, F8E4M3, F8E5M2, I8, U8, I32, I64, Bool };

struct DTypeInfo {
  DType dtype;
  const char* name;              // qdit / PyTorch-like name: "f32", "bf16", ...
  const char* safetensors_name;  // "F32", "BF16", "F8_E4M3", ...
  size_t size;
  bool is_float;
};

const DTypeInfo& dtype_info(DType t);
inline size_t dtype_size(DType t) { return dtype_info(t).size; }
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
std::optional<DType> dtype_from_safetensors(std::string_view name);
// Accepts qdit names and common aliases ("float32", "bfloat16", "fp16", ...).
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace qdit
