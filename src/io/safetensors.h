// Reader and writer for the safetensors format (8-byte LE header length, JSON header, raw data).
// The reader memory-maps the file, validates the header strictly (every error names the file
// and the tensor) and hands out zero-copy Tensor views; models bind weights through it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/mmap_file.h"

namespace qdit::io {

struct TensorRecord {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the start of the data section

  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const { return shape_numel(shape); }
};

class SafetensorsFile {
 public:
  // Largest header accepted (same bound as the reference implementation).
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // Maps and validates `path`; throws qdit::Error naming the file (and tensor) on any defect.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return path_; }
  // Records sorted by their position in the data section (header order breaks ties).
  const std::vector<TensorRecord>& records() const { return records_; }
  const TensorRecord* find(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }

  // Zero-copy view into the mapping (the view keeps the mapping alive). Data whose address is
  // not a multiple of the element size (possible in files from other writers) is copied into
  // an owned, aligned tensor tagged MemTag::Weights instead.
  Tensor tensor(std::string_view name) const;
  Tensor tensor(const TensorRecord& record) const;
  // Tensor views handed out by every file so far: how tests check that planning reads headers only.
  static uint64_t tensors_handed_out();

  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  uint64_t file_size() const { return map_->size(); }
  uint64_t data_offset() const { return data_offset_; }  // 8 + header length
  uint64_t tensor_bytes() const;                         // sum of all records' bytes
  const std::shared_ptr<const MappedFile>& mapping() const { return map_; }

 private:
  SafetensorsFile() = default;
  void parse(std::string_view header, uint64_t data_size);

  std::string path_;
  std::shared_ptr<const MappedFile> map_;
  uint64_t data_offset_ = 0;
  std::vector<TensorRecord> records_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any strides; written contiguous) and `metadata` to `path` in the layout
// the Python library produces: header padded with spaces to 8-byte alignment, tensors ordered
// by decreasing element size (input order among equals) so every tensor is naturally aligned.
// Writes `path`.tmp.<pid> and renames it, so a crash never leaves a truncated file at `path`.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace qdit::io
