#include "qdit/core/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "qdit/core/error.h"
#include "qdit/core/float_cast.h"
#include "qdit/core/parallel.h"

namespace qdit {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

int64_t strided_offset(const Shape& shape, const Shape& strides, int64_t flat, size_t dims) {
  int64_t off = 0;
  for (size_t k = dims; k-- > 0;) {
    off += (flat % shape[k]) * strides[k];
    flat /= shape[k];
  }
  return off;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

Storage::Storage(size_t bytes, MemTag tag)
    : data_(CpuAllocator::instance().allocate(bytes, tag)), bytes_(bytes), owned_(true), tag_(tag) {}

Storage::Storage(void* data, size_t bytes, std::shared_ptr<const void> owner)
    : data_(data), bytes_(bytes), owned_(false), owner_(std::move(owner)) {}

Storage::~Storage() {
  if (owned_) CpuAllocator::instance().deallocate(data_, bytes_, tag_);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, MemTag tag) {
  for (auto d : shape) QDIT_CHECK(d >= 0, "[tensor] negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), tag);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, MemTag tag) {
  Tensor t = empty(shape, dtype, tag);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, MemTag tag) {
  Tensor t = empty(shape, DType::F32, tag);
  std::fill_n(t.data<float>(), t.numel(), value);
  return t;
}

Tensor Tensor::borrow(const void* data, const Shape& shape, DType dtype,
                      std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.storage_ = std::make_shared<Storage>(const_cast<void*>(data),
                                         static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype),
                                         std::move(owner));
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& shape) {
  QDIT_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "[tensor] from_vector: ",
             v.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

int64_t Tensor::size(int64_t d) const {
  if (d < 0) d += dim();
  QDIT_CHECK(d >= 0 && d < dim(), "[tensor] dimension ", d, " out of range for ", desc());
  return shape_[d];
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  QDIT_CHECK(storage_, "[tensor] access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

Tensor Tensor::reshape(const Shape& shape) const {
  QDIT_CHECK(is_contiguous(), "[reshape] tensor ", desc(), " is not contiguous");
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      QDIT_CHECK(infer < 0, "[reshape] more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    QDIT_CHECK(known > 0 && numel() % known == 0, "[reshape] cannot reshape ", desc(), " to ", shape_str(shape));
    s[infer] = numel() / known;
  }
  QDIT_CHECK(shape_numel(s) == numel(), "[reshape] cannot reshape ", desc(), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end) const {
  if (d < 0) d += dim();
  QDIT_CHECK(d >= 0 && d < dim(), "[slice] dimension out of range for ", desc());
  QDIT_CHECK(0 <= start && start <= end && end <= shape_[d], "[slice] range [", start, ", ", end,
             ") out of bounds for dim ", d, " of ", desc());
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.shape_[d] = end - start;
  return t;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  if (d < 0) d += dim();
  Tensor t = slice(d, index, index + 1);
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  QDIT_CHECK(static_cast<int64_t>(order.size()) == dim(), "[permute] order has ", order.size(),
             " entries for ", desc());
  std::vector<bool> seen(order.size(), false);
  Tensor t = *this;
  for (size_t i = 0; i < order.size(); ++i) {
    QDIT_CHECK(order[i] >= 0 && order[i] < dim() && !seen[order[i]], "[permute] invalid order");
    seen[order[i]] = true;
    t.shape_[i] = shape_[order[i]];
    t.strides_[i] = strides_[order[i]];
  }
  return t;
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> order(dim());
  for (int64_t i = 0; i < dim(); ++i) order[i] = i;
  if (a < 0) a += dim();
  if (b < 0) b += dim();
  std::swap(order[a], order[b]);
  return permute(order);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  if (d < 0) d += dim() + 1;
  QDIT_CHECK(d >= 0 && d <= dim(), "[unsqueeze] dimension out of range for ", desc());
  Tensor t = *this;
  int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(t.shape_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, stride);
  return t;
}

namespace {

float load_as_f32(const void* base, DType dt, int64_t i) {
  switch (dt) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::F8E4M3: return fp8_e4m3fn_to_f32(static_cast<const uint8_t*>(base)[i]);
    case DType::F8E5M2: return fp8_e5m2_to_f32(static_cast<const uint8_t*>(base)[i]);
    case DType::I8: return static_cast<const int8_t*>(base)[i];
    case DType::U8: return static_cast<const uint8_t*>(base)[i];
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(base)[i]);
    case DType::I64: return static_cast<float>(static_cast<const int64_t*>(base)[i]);
    case DType::Bool: return static_cast<const uint8_t*>(base)[i] ? 1.0f : 0.0f;
  }
  return 0.0f;
}

void store_from_f32(void* base, DType dt, int64_t i, float v) {
  switch (dt) {
    case DType::F32: static_cast<float*>(base)[i] = v; break;
    case DType::F16: static_cast<uint16_t*>(base)[i] = f32_to_f16(v); break;
    case DType::BF16: static_cast<uint16_t*>(base)[i] = f32_to_bf16(v); break;
    case DType::F8E4M3: static_cast<uint8_t*>(base)[i] = f32_to_fp8_e4m3fn(v); break;
    case DType::F8E5M2: static_cast<uint8_t*>(base)[i] = f32_to_fp8_e5m2(v); break;
    case DType::I8: static_cast<int8_t*>(base)[i] = static_cast<int8_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); break;
    case DType::I32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
    case DType::Bool: static_cast<uint8_t*>(base)[i] = v != 0.0f; break;
  }
}

// Calls f(dst_linear_index, src_offset_elements) over all elements of a strided tensor.
template <typename F>
void for_each_offset(const Shape& shape, const Shape& strides, F&& f) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t lin = 0; lin < n; ++lin) {
    f(lin, off);
    for (size_t k = nd; k-- > 0;) {
      if (++idx[k] < shape[k]) { off += strides[k]; break; }
      off -= strides[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
}

}  // namespace

namespace {

// One row of n elements, src -> dst, converting the dtype; typed loops for the pairs the models
// hit every step (they vectorise), the per-element switch otherwise.
void convert_row(char* dst, DType ddt, const char* src, DType sdt, int64_t n) {
  if (ddt == sdt) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(ddt));
  } else if (sdt == DType::F32 && ddt == DType::BF16) {
    const float* s = reinterpret_cast<const float*>(src);
    uint16_t* d = reinterpret_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
  } else if (sdt == DType::BF16 && ddt == DType::F32) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    float* d = reinterpret_cast<float*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
  } else if (sdt == DType::F16 && ddt == DType::F32) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    float* d = reinterpret_cast<float*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = f16_to_f32(s[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) store_from_f32(dst, ddt, i, load_as_f32(src, sdt, i));
  }
}

}  // namespace

void Tensor::copy_from(const Tensor& src) {
  QDIT_CHECK(src.shape() == shape_, "[copy] shape mismatch: ", src.desc(), " into ", desc());
  QDIT_CHECK(is_contiguous(), "[copy] destination ", desc(), " must be contiguous");
  char* dst = static_cast<char*>(raw_data());
  const size_t esz = dtype_size(dtype_);
  if (src.dtype() == dtype_ && src.is_contiguous()) {
    std::memcpy(dst, src.raw_data(), nbytes());
    return;
  }
  const char* s = static_cast<const char*>(src.raw_data());
  const size_t sesz = dtype_size(src.dtype());
  const bool int_to_int = !dtype_info(dtype_).is_float && !dtype_info(src.dtype()).is_float &&
                          dtype_ == DType::I64;
  // Row by row when the source's last dim is contiguous (slices, head permutations, casts): the
  // per-element index walk below costs several ns per element, which made every view copy in a
  // DiT step (q/k/v slices, head splits) as slow as a GEMM of its size.
  const int64_t n = numel();
  if (!int_to_int && n > 0 && dim() >= 1 && (shape_.back() == 1 || src.strides().back() == 1)) {
    const int64_t row = shape_.back(), rows = n / row;
    const Shape& st = src.strides();
    const size_t lead = shape_.size() - 1;
    parallel_for(rows, std::max<int64_t>(1, 32768 / row), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t off = strided_offset(shape_, st, r, lead);
        convert_row(dst + r * row * esz, dtype_, s + off * sesz, src.dtype(), row);
      }
    });
    return;
  }
  if (src.dtype() == dtype_) {
    for_each_offset(shape_, src.strides(), [&](int64_t lin, int64_t off) {
      std::memcpy(dst + lin * esz, s + off * esz, esz);
    });
    return;
  }
  for_each_offset(shape_, src.strides(), [&](int64_t lin, int64_t off) {
    if (int_to_int && src.dtype() == DType::I32) {
      reinterpret_cast<int64_t*>(dst)[lin] = reinterpret_cast<const int32_t*>(s)[off];
    } else {
      store_from_f32(dst, dtype_, lin, load_as_f32(s, src.dtype(), off));
    }
  });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone(MemTag tag) const {
  Tensor t = empty(shape_, dtype_, tag);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype);
  t.copy_from(*this);
  return t;
}

float Tensor::item_f32(int64_t flat_index) const {
  QDIT_CHECK(flat_index >= 0 && flat_index < numel(), "[tensor] index ", flat_index,
             " out of range for ", desc());
  return load_as_f32(raw_data(), dtype_, strided_offset(shape_, strides_, flat_index, shape_.size()));
}

std::vector<float> Tensor::to_vector() const {
  Tensor c = contiguous().to(DType::F32);
  const float* p = c.data<float>();
  return std::vector<float>(p, p + c.numel());
}

std::string Tensor::desc() const {
  return std::string(dtype_name(dtype_)) + shape_str(shape_);
}

}  // namespace qdit
