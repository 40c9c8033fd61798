#include "qdit/core/dtype.h"

#include <array>
#include <string>

namespace qdit {
namespace {
constexpr std::array<DTypeInfo, 10> kInfo = {{
    {DType::F32, "f32", "F32", 4, true},
    {DType::F16, "f16", "F16", 2, true},
    {DType::BF16, "bf16", "BF16", 2, true},
    {DType::F8E4M3, "fp8_e4m3fn", "F8_E4M3", 1, true},
    {DType::F8E5M2, "fp8_e5m2", "F8_E5M2", 1, true},
    {DType::I8, "i8", "I8", 1, false},
    {DType::U8, "u8", "U8", 1, false},
    {DType::I32, "i32", "I32", 4, false},
    {DType::I64, "i64", "I64", 8, false},
    {DType::Bool, "bool", "BOOL", 1, false},
}};
}  // namespace

const DTypeInfo& dtype_info(DType t) { return kInfo[static_cast<size_t>(t)]; }

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (const auto& i : kInfo)
    if (name == i.safetensors_name) return i.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kInfo)
    if (name == i.name) return i.dtype;
  if (name == "float32" || name == "fp32") return DType::F32;
  if (name == "float16" || name == "fp16" || name == "half") return DType::F16;
  if (name == "bfloat16") return DType::BF16;
  if (name == "float8_e4m3fn" || name == "fp8") return DType::F8E4M3;
  if (name == "float8_e5m2") return DType::F8E5M2;
  if (name == "int8") return DType::I8;
  if (name == "uint8") return DType::U8;
  if (name == "int32") return DType::I32;
  if (name == "int64") return DType::I64;
  return std::nullopt;
}

}  // namespace qdit
