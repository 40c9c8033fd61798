// Tensor: a typed, strided view over a refcounted Storage. Storage is either owned (from the
// accounting CpuAllocator) or borrowed (e.g. a memory-mapped safetensors range kept alive by a
// shared owner). Tensors carry no math: ops live in kernels/.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "qdit/core/allocator.h"
#include "qdit/core/dtype.h"

namespace qdit {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
// Element offset, under `strides`, of the row-major flat index `flat` over the first `dims` dims of
// `shape` (dims = rank for an element; rank - 1 for the start of a last-dim row).
int64_t strided_offset(const Shape& shape, const Shape& strides, int64_t flat, size_t dims);

class Storage {
 public:
  Storage(size_t bytes, MemTag tag);                                   // owned
  Storage(void* data, size_t bytes, std::shared_ptr<const void> owner); // borrowed
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool owned() const { return owned_; }
  MemTag tag() const { return tag_; }

 private:
  void* data_;
  size_t bytes_;
  bool owned_;
  MemTag tag_ = MemTag::Other;
  std::shared_ptr<const void> owner_;
};

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype, MemTag tag = MemTag::Activations);
  static Tensor zeros(const Shape& shape, DType dtype, MemTag tag = MemTag::Activations);
  static Tensor full(const Shape& shape, float value, MemTag tag = MemTag::Activations);  // f32
  // Zero-copy view of external memory; `owner` keeps it alive (may be null for static data).
  static Tensor borrow(const void* data, const Shape& shape, DType dtype,
                       std::shared_ptr<const void> owner);
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* raw_data() const;
  template <typename T> T* data() const { return static_cast<T*>(raw_data()); }

  // Views (share storage).
  Tensor reshape(const Shape& shape) const;  // requires contiguous; one -1 allowed
  Tensor slice(int64_t dim, int64_t start, int64_t end) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor unsqueeze(int64_t dim) const;

  // Copies.
  Tensor contiguous() const;  // returns *this if already contiguous
  Tensor clone(MemTag tag = MemTag::Activations) const;
  Tensor to(DType dtype) const;  // float <-> float and int <-> float casts, RNE
  void copy_from(const Tensor& src);  // same shape; dtype cast allowed

  // Element read/write as float (slow; for tests, small tensors and tools).
  float item_f32(int64_t flat_index) const;
  std::vector<float> to_vector() const;

  std::string desc() const;  // "bf16[2, 3]"

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;  // in elements
  DType dtype_ = DType::F32;
};

Shape contiguous_strides(const Shape& shape);

}  // namespace qdit
