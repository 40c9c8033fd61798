// Helpers for the tokenizer tests: golden case paths, case.json, I64 tensors from the golden
// safetensors files as rows, and a self-deleting temp folder for malformed tokenizer folders.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "qdit/core/error.h"
#include "qdit/io/safetensors.h"

namespace qdit::tokenizers::testing {

namespace fs = std::filesystem;

inline std::string golden_dir(const std::string& name) {
  return std::string(QDIT_TEST_DATA_DIR) + "/golden/" + name;
}

inline nlohmann::json read_case_json(const std::string& name) {
  std::ifstream f(golden_dir(name) + "/case.json");
  if (!f) throw std::runtime_error("cannot open case.json of " + name);
  return nlohmann::json::parse(f);
}

// An I64 [N, L] golden tensor as N rows.
inline std::vector<std::vector<int64_t>> i64_rows(const io::SafetensorsFile& file, const std::string& key) {
  Tensor t = file.tensor(key);
  if (t.dtype() != DType::I64 || t.dim() != 2)
    throw std::runtime_error(key + ": expected an I64 matrix, found " + t.desc());
  t = t.contiguous();
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(t.size(0)));
  const int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < t.size(0); ++i) rows[i].assign(p + i * t.size(1), p + (i + 1) * t.size(1));
  return rows;
}

inline std::vector<int64_t> i64_vector(const io::SafetensorsFile& file, const std::string& key) {
  Tensor t = file.tensor(key).contiguous();
  if (t.dtype() != DType::I64) throw std::runtime_error(key + ": expected I64, found " + t.desc());
  const int64_t* p = t.data<int64_t>();
  return std::vector<int64_t>(p, p + t.numel());
}

// The UTF-8 strings stored as zero-padded byte rows (`<prefix>utf8` [N, maxbytes]).
inline std::string bytes_row_to_string(const std::vector<int64_t>& row, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(row.at(i)));
  return s;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_tok_test_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream f(file(name), std::ios::binary);
    f << bytes;
    if (!f) throw std::runtime_error("cannot write " + file(name));
  }
  void copy_from(const std::string& dir, const std::vector<std::string>& names) const {
    for (const auto& n : names) fs::copy_file(fs::path(dir) / n, path_ / n);
  }

 private:
  fs::path path_;
};

// The message of the qdit::Error that `fn` throws ("" and a test failure when it throws none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const qdit::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a qdit::Error";
  return "";
}

}  // namespace qdit::tokenizers::testing
