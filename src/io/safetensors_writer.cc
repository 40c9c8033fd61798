#include "qdit/io/safetensors_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "qdit/core/error.h"
#include "qdit/io/safetensors.h"

namespace qdit::io {

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)) {
  std::unordered_set<std::string> seen;
  for (const auto& t : tensors) {
    QDIT_CHECK(!t.name.empty(), "[", path_, "] cannot save a tensor with an empty name");
    QDIT_CHECK(t.name != "__metadata__", "[", path_, "] '__metadata__' is reserved and cannot name a tensor");
    QDIT_CHECK(seen.insert(t.name).second, "[", path_, "] tensor '", t.name, "' is given twice");
    for (int64_t d : t.shape)
      QDIT_CHECK(d >= 0, "[", path_, "] tensor '", t.name, "' has a negative dimension in ", shape_str(t.shape));
  }
  order_ = std::move(tensors);
  std::stable_sort(order_.begin(), order_.end(), [](const TensorDecl& a, const TensorDecl& b) {
    return dtype_size(a.dtype) > dtype_size(b.dtype);
  });

  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  for (const auto& t : order_) {
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = dtype_info(t.dtype).safetensors_name;
    e["shape"] = t.shape;
    e["data_offsets"] = {data_bytes_, data_bytes_ + t.nbytes()};
    data_bytes_ += t.nbytes();
    h[t.name] = std::move(e);
  }
  std::string header = h.dump();
  while (header.size() % 8 != 0) header.push_back(' ');
  header_bytes_ = 8 + header.size();

  tmp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  f_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!f_) fail("[", path_, "] cannot create temporary file ", tmp_path_, ": ", std::strerror(errno));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  raw_write(len, 8);
  raw_write(header.data(), header.size());
  while (cur_ < order_.size() && order_[cur_].nbytes() == 0) ++cur_;  // empty tensors have no bytes
}

SafetensorsWriter::~SafetensorsWriter() {
  if (f_) std::fclose(f_);
  if (!done_) std::remove(tmp_path_.c_str());
}

const TensorDecl* SafetensorsWriter::current() const { return cur_ < order_.size() ? &order_[cur_] : nullptr; }

void SafetensorsWriter::raw_write(const void* data, uint64_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n)
    fail("[", path_, "] write failed after ", std::ftell(f_), " bytes: ", std::strerror(errno));
}

void SafetensorsWriter::write(const std::string& name, const void* data, uint64_t n) {
  QDIT_CHECK(!done_ && f_, "[", path_, "] write of '", name, "' after finish()");
  const TensorDecl* t = current();
  QDIT_CHECK(t, "[", path_, "] write of '", name, "': every declared tensor is already complete");
  QDIT_CHECK(t->name == name, "[", path_, "] write of '", name, "' while '", t->name,
             "' is incomplete (tensors must be written in order())");
  QDIT_CHECK(cur_written_ + n <= t->nbytes(), "[", path_, "] tensor '", name, "' holds ", t->nbytes(),
             " bytes; writing ", n, " more after ", cur_written_, " would pass its end");
  raw_write(data, n);
  cur_written_ += n;
  if (cur_written_ == t->nbytes()) {
    cur_written_ = 0;
    ++cur_;
    while (cur_ < order_.size() && order_[cur_].nbytes() == 0) ++cur_;
  }
}

void SafetensorsWriter::finish() {
  QDIT_CHECK(!done_ && f_, "[", path_, "] finish() called twice");
  if (const TensorDecl* t = current())
    fail("[", path_, "] cannot finish: tensor '", t->name, "' has ", cur_written_, " of its ", t->nbytes(),
         " bytes (", order_.size() - cur_, " tensors incomplete)");
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0)
    fail("[", path_, "] cannot flush ", tmp_path_, ": ", std::strerror(errno));
  std::FILE* f = f_;
  f_ = nullptr;
  if (std::fclose(f) != 0) fail("[", path_, "] cannot close ", tmp_path_, ": ", std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) fail("[", path_, "] cannot rename ", tmp_path_, " into place: ", ec.message());
  done_ = true;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorDecl> decls;
  decls.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    QDIT_CHECK(t.defined(), "[", path, "] tensor '", name, "' is undefined");
    decls.push_back({name, t.dtype(), t.shape()});
  }
  SafetensorsWriter w(path, std::move(decls), metadata);
  // Data goes in the writer's order; names are unique (the writer checked), so look them up.
  std::unordered_map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : tensors) by_name.emplace(name, &t);
  for (const TensorDecl& d : w.order()) {
    const Tensor c = by_name.at(d.name)->contiguous();
    if (c.numel()) w.write(d.name, c.raw_data(), c.nbytes());
  }
  w.finish();
}

}  // namespace qdit::io
