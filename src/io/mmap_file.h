// Read-only memory map of a whole file. Owned through shared_ptr so that tensor views into
// the mapping (safetensors weights) keep it alive after the file object that made them is gone.
// Used by safetensors.cc; nothing else in qdit should need raw mmap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace qdit::io {

class MappedFile {
 public:
  // How the pages will be read; passed to madvise for the whole mapping. DontNeed unmaps a
  // range's pages from this process (they stay in the page cache and fault back in when read
  // again; safe because the mapping is read-only), which takes consumed weights out of the RSS.
  enum class Access { Normal, Sequential, Random, WillNeed, DontNeed };

  // Maps `path` read-only (MAP_PRIVATE). An empty file gives a valid object with size() 0.
  // Throws qdit::Error naming the file when it cannot be opened, stat'ed or mapped.
  static std::shared_ptr<const MappedFile> open(const std::string& path, Access access = Access::Normal);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Re-advise a byte range (rounded out to whole pages); errors are ignored, advice is a hint.
  void advise(size_t offset, size_t length, Access access) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace qdit::io
