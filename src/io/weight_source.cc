#include "qdit/io/weight_source.h"

#include <filesystem>

#include "qdit/core/error.h"
#include "qdit/io/json_config.h"

namespace qdit::io {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::shared_ptr<SafetensorsWeights> SafetensorsWeights::open(const std::string& path) {
  return ends_with(path, ".json") ? open_index(path) : open_file(path);
}

std::shared_ptr<SafetensorsWeights> SafetensorsWeights::open_file(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  const size_t n = f->records().size();
  return from_files({std::move(f)}, ::qdit::detail::concat(path, " (", n, " tensors)"));
}

std::shared_ptr<SafetensorsWeights> SafetensorsWeights::from_files(
    std::vector<std::shared_ptr<SafetensorsFile>> files, std::string description) {
  std::shared_ptr<SafetensorsWeights> w(new SafetensorsWeights());
  w->files_ = std::move(files);
  w->description_ = std::move(description);
  for (size_t i = 0; i < w->files_.size(); ++i) {
    for (const TensorRecord& r : w->files_[i]->records()) {
      auto [it, fresh] = w->index_.emplace(r.name, Entry{i, &r});
      QDIT_CHECK(fresh, "[", w->description_, "] tensor '", r.name, "' is in both ", w->files_[it->second.file]->path(),
                 " and ", w->files_[i]->path());
      w->total_bytes_ += r.nbytes();
    }
  }
  return w;
}

std::shared_ptr<SafetensorsWeights> SafetensorsWeights::open_index(const std::string& index_path) {
  const JsonConfig idx = JsonConfig::load(index_path);
  const auto wm_it = idx.raw().find("weight_map");
  QDIT_CHECK(wm_it != idx.raw().end(), "[", index_path, "] missing key 'weight_map' (not a safetensors shard index)");
  const nlohmann::json& wm = *wm_it;
  if (!wm.is_object()) detail::json_type_error("[" + index_path + "] key 'weight_map'", "an object", wm);

  // Shards in order of first appearance in weight_map.
  const fs::path dir = fs::path(index_path).parent_path();
  std::vector<std::string> shard_names;
  std::unordered_map<std::string, size_t> shard_of_name;
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    if (!it->is_string())
      detail::json_type_error("[" + index_path + "] weight_map entry '" + it.key() + "'", "a shard file name", *it);
    const std::string shard = it->get<std::string>();
    const fs::path rel(shard);
    bool escapes = rel.is_absolute() || shard.empty();
    for (const auto& part : rel) escapes |= part == "..";
    QDIT_CHECK(!escapes, "[", index_path, "] tensor '", it.key(), "' maps to shard '", shard,
               "', which is not a file name inside the index's folder");
    if (shard_of_name.emplace(shard, shard_names.size()).second) shard_names.push_back(shard);
  }

  std::vector<std::shared_ptr<SafetensorsFile>> files;
  for (const std::string& shard : shard_names) {
    const fs::path p = dir / shard;
    std::error_code ec;
    QDIT_CHECK(fs::is_regular_file(p, ec), "[", index_path, "] shard '", shard, "' does not exist (expected at ",
               p.string(), ")");
    files.push_back(SafetensorsFile::open(p.string()));
  }

  // Tensor -> shard actually holding it; a tensor in two shards is ambiguous.
  std::unordered_map<std::string, size_t> holder;
  for (size_t i = 0; i < files.size(); ++i) {
    for (const TensorRecord& r : files[i]->records()) {
      auto [it, fresh] = holder.emplace(r.name, i);
      QDIT_CHECK(fresh, "[", index_path, "] tensor '", r.name, "' appears in two shards: '", shard_names[it->second],
                 "' and '", shard_names[i], "'");
    }
  }
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    const std::string& shard = it->get_ref<const std::string&>();
    auto h = holder.find(it.key());
    QDIT_CHECK(h != holder.end() && h->second == shard_of_name.at(shard), "[", index_path, "] tensor '", it.key(),
               "' is mapped to shard '", shard, "' but that shard does not contain it",
               h != holder.end() ? " (it is in '" + shard_names[h->second] + "')" : std::string());
  }
  for (const auto& [name, i] : holder) {
    QDIT_CHECK(wm.contains(name), "[", index_path, "] shard '", shard_names[i], "' holds tensor '", name,
               "', which weight_map does not list");
  }
  return from_files(std::move(files), ::qdit::detail::concat(index_path, " (", shard_names.size(), " shards, ",
                                                     holder.size(), " tensors)"));
}

std::vector<std::string> SafetensorsWeights::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& f : files_)
    for (const auto& r : f->records()) out.push_back(r.name);
  return out;
}

const TensorRecord* SafetensorsWeights::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.record;
}

void SafetensorsWeights::missing(const std::string& name) const {
  // Suggest the existing name sharing the longest prefix: binding errors are usually a typo
  // or a renamed submodule ("...to_out.0.weight" vs "...to_out.weight").
  std::string best;
  size_t best_len = 0;
  for (const auto& [n, e] : index_) {
    size_t k = 0;
    while (k < n.size() && k < name.size() && n[k] == name[k]) ++k;
    if (k > best_len || (k == best_len && !best.empty() && n < best)) best = n, best_len = k;
  }
  if (best_len * 2 >= name.size() && !best.empty())
    fail("[", description_, "] no tensor named '", name, "' (nearest: '", best, "')");
  fail("[", description_, "] no tensor named '", name, "'");
}

Tensor SafetensorsWeights::tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) missing(name);
  return files_[it->second.file]->tensor(*it->second.record);
}

const SafetensorsFile& SafetensorsWeights::file_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) missing(name);
  return *files_[it->second.file];
}

}  // namespace qdit::io

namespace qdit::io {

void SafetensorsWeights::drop_pages(const std::string& prefix) const {
  for (const auto& f : files_) {
    // Records are sorted by offset: adjacent matches merge into one madvise call.
    uint64_t begin = 0, end = 0;
    auto flush = [&] {
      if (end > begin) f->mapping()->advise(f->data_offset() + begin, end - begin, MappedFile::Access::DontNeed);
      begin = end = 0;
    };
    for (const TensorRecord& r : f->records()) {
      if (r.name.compare(0, prefix.size(), prefix) != 0) {
        flush();
        continue;
      }
      if (end == 0 || r.begin != end) {
        flush();
        begin = r.begin;
      }
      end = r.end;
    }
    flush();
  }
}

}  // namespace qdit::io
