// Streaming safetensors writer: the tensors are declared up front (name, dtype, shape), the
// header is written at once, then each tensor's bytes are appended in pieces, so a file of any
// size is written without holding it in memory (`qdit make-model` writes 10 GB components so).
// save_safetensors (safetensors.h) is built on it, so both produce the same layout.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::io {

struct TensorDecl {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t nbytes() const { return static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype); }
};

class SafetensorsWriter {
 public:
  // Validates the declarations (non-empty unique names, not "__metadata__", non-negative dims),
  // orders the data like the Python library (decreasing element size, declaration order among
  // equals, so every tensor is naturally aligned), creates `path`.tmp.<pid> and writes the header.
  SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors,
                    const std::map<std::string, std::string>& metadata = {});
  // Removes the temporary file unless finish() succeeded.
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The tensors in the order their bytes must be written.
  const std::vector<TensorDecl>& order() const { return order_; }
  // The tensor whose bytes come next; nullptr once every byte is written.
  const TensorDecl* current() const;

  // Appends `n` bytes of tensor `name`, which must be current(); a tensor may arrive in any
  // number of pieces, but never past its end.
  void write(const std::string& name, const void* data, uint64_t n);
  // Checks that every tensor is complete, flushes, fsyncs and renames the file into place.
  void finish();

  const std::string& path() const { return path_; }
  uint64_t header_bytes() const { return header_bytes_; }  // 8 + padded JSON header
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  void raw_write(const void* data, uint64_t n);

  std::string path_, tmp_path_;
  std::FILE* f_ = nullptr;
  std::vector<TensorDecl> order_;
  size_t cur_ = 0;           // index in order_ of the tensor being written
  uint64_t cur_written_ = 0;  // bytes of it written so far
  uint64_t header_bytes_ = 0, data_bytes_ = 0;
  bool done_ = false;
};

}  // namespace qdit::io
