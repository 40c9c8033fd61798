// WeightSource: where a model binds its weights from, by tensor name. SafetensorsWeights is
// the implementation over one safetensors file or a sharded set (*.safetensors.index.json);
// models/ and quant/ see only the interface, so other containers can be added later.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "qdit/io/safetensors.h"

namespace qdit::io {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual std::vector<std::string> names() const = 0;
  virtual const TensorRecord* find(const std::string& name) const = 0;
  // Throws naming describe() and `name` (with the nearest existing name) when absent.
  virtual Tensor tensor(const std::string& name) const = 0;
  virtual size_t total_bytes() const = 0;
  virtual std::string describe() const = 0;
  // Hands back the memory of mapped tensors whose names start with `prefix` ("" = all): their
  // pages leave this process's RSS and are read again if a view is used later. Called once a
  // module has copied (packed, quantized) what it needs. A no-op for sources that own copies.
  virtual void drop_pages(const std::string& prefix) const {}
  bool contains(const std::string& name) const { return find(name) != nullptr; }
};

class SafetensorsWeights final : public WeightSource {
 public:
  // A single "*.safetensors" file, or a "*.index.json" shard index (chosen by the name).
  static std::shared_ptr<SafetensorsWeights> open(const std::string& path);
  static std::shared_ptr<SafetensorsWeights> open_file(const std::string& path);
  // Opens every shard named in weight_map (paths relative to the index's folder) and checks
  // that each shard exists, every mapped tensor is in its shard, no tensor is in two shards
  // and no shard holds a tensor the map does not list.
  static std::shared_ptr<SafetensorsWeights> open_index(const std::string& index_path);
  // Several files as one source; a name present in two files is an error.
  static std::shared_ptr<SafetensorsWeights> from_files(std::vector<std::shared_ptr<SafetensorsFile>> files,
                                                        std::string description);

  std::vector<std::string> names() const override;  // shard by shard, file order within each
  const TensorRecord* find(const std::string& name) const override;
  Tensor tensor(const std::string& name) const override;
  size_t total_bytes() const override { return total_bytes_; }
  std::string describe() const override { return description_; }
  void drop_pages(const std::string& prefix) const override;

  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  // The file holding `name` (throws like tensor() when absent).
  const SafetensorsFile& file_of(const std::string& name) const;

 private:
  struct Entry {
    size_t file;
    const TensorRecord* record;
  };
  [[noreturn]] void missing(const std::string& name) const;

  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, Entry> index_;
  size_t total_bytes_ = 0;
  std::string description_;
};

}  // namespace qdit::io
