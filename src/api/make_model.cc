// `qdit make-model`: plans a pipeline (make_model_archs.cc, make_model_weights.cc) and writes it:
// configs, synthetic tokenizers, and weights streamed chunk by chunk into (sharded) safetensors.
#include "qdit/api/make_model.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>

#include "qdit/api/make_model_internal.h"
#include "qdit/api/make_model_tokenizers.h"
#include "qdit/core/error.h"
#include "qdit/core/float_cast.h"
#include "qdit/core/parallel.h"
#include "qdit/io/safetensors_writer.h"

namespace qdit::api {

namespace fs = std::filesystem;
using make_model_detail::write_json_file;

int64_t ComponentSpec::parameters() const {
  int64_t n = 0;
  for (const WeightSpec& w : weights) n += w.buffer ? 0 : w.numel();
  return n;
}

int64_t ComponentSpec::buffer_elements() const {
  int64_t n = 0;
  for (const WeightSpec& w : weights) n += w.buffer ? w.numel() : 0;
  return n;
}

uint64_t ComponentSpec::weight_bytes(DType dtype) const {
  return static_cast<uint64_t>(parameters() + buffer_elements()) * dtype_size(dtype);
}

const ComponentSpec* PipelineSpec::find(const std::string& name) const {
  for (const ComponentSpec& c : components)
    if (c.name == name) return &c;
  return nullptr;
}

PipelineSpec plan_pipeline(const std::string& arch, bool tiny, DType dtype) {
  QDIT_CHECK(dtype == DType::BF16 || dtype == DType::F32, "[make-model] weight dtype must be bf16 or f32, found ",
             dtype_name(dtype));
  PipelineSpec p = make_model_detail::plan_components(arch, tiny, dtype);
  for (ComponentSpec& c : p.components)
    if (!c.weights_stem.empty()) c.weights = make_model_detail::plan_weights(c.class_name, c.config);
  return p;
}

namespace make_model_detail {

namespace {

// nlohmann writes non-finite numbers as null; Python writes these bare tokens.
nlohmann::json mark_non_finite(const nlohmann::json& j) {
  if (j.is_number_float() && !std::isfinite(j.get<double>())) {
    const double v = j.get<double>();
    return std::string("\x01") + (std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
  }
  if (j.is_structured()) {
    nlohmann::json out = j;
    for (auto it = out.begin(); it != out.end(); ++it) *it = mark_non_finite(*it);
    return out;
  }
  return j;
}

}  // namespace

void write_json_file(const std::string& path, const nlohmann::json& j) {
  std::string text = mark_non_finite(j).dump(2);
  for (const char* token : {"NaN", "Infinity", "-Infinity"}) {
    const std::string marked = std::string("\"\\u0001") + token + "\"";
    for (size_t at = text.find(marked); at != std::string::npos; at = text.find(marked, at))
      text.replace(at, marked.size(), token);
  }
  std::ofstream f(path, std::ios::binary);
  f << text << "\n";
  f.close();
  if (!f) fail("[make-model] cannot write ", path);
}

}  // namespace make_model_detail

namespace {

constexpr int64_t kChunkElements = int64_t{1} << 22;  // 4M values (8 MB bf16) per write
constexpr int64_t kGrain = int64_t{1} << 15;

struct Shard {
  std::string file;
  std::vector<const WeightSpec*> weights;
  uint64_t bytes = 0;
};

// save_pretrained's split: tensors in order, a new shard when the next would pass the limit.
std::vector<Shard> split_shards(const ComponentSpec& c, DType dtype, uint64_t max_bytes) {
  std::vector<Shard> shards(1);
  for (const WeightSpec& w : c.weights) {
    const uint64_t b = static_cast<uint64_t>(w.numel()) * dtype_size(dtype);
    if (!shards.back().weights.empty() && shards.back().bytes + b > max_bytes) shards.emplace_back();
    shards.back().weights.push_back(&w);
    shards.back().bytes += b;
  }
  char buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards.size() == 1) {
      shards[i].file = c.weights_stem + ".safetensors";
    } else {
      std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      shards[i].file = c.weights_stem + buf;
    }
  }
  return shards;
}

// Values [begin, end) of `w` converted to `dtype` into `out` (bytes), in parallel.
void fill_chunk(const WeightSpec& w, uint64_t key, const Tensor& table, int64_t begin, int64_t end, DType dtype,
                uint8_t* out) {
  parallel_for(end - begin, kGrain, [&](int64_t lo, int64_t hi) {
    constexpr int64_t kScratch = 4096;
    float scratch[kScratch];
    for (int64_t s = lo; s < hi; s += kScratch) {
      const int64_t n = std::min(kScratch, hi - s);
      float* dst = dtype == DType::F32 ? reinterpret_cast<float*>(out) + s : scratch;
      if (table.defined()) std::copy_n(table.data<float>() + begin + s, n, dst);
      else fill_weight(w, key, begin + s, begin + s + n, dst);
      if (dtype == DType::BF16) {
        uint16_t* o = reinterpret_cast<uint16_t*>(out) + s;
        for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(scratch[i]);
      }
    }
  });
}

// Writes one shard: each tensor in chunks, filling the next chunk while the previous one is written.
void write_shard(const std::string& path, const Shard& shard, const std::string& component, uint64_t seed,
                 DType dtype, const std::function<void(uint64_t)>& on_bytes) {
  std::vector<io::TensorDecl> decls;
  for (const WeightSpec* w : shard.weights) decls.push_back({w->name, dtype, w->shape});
  io::SafetensorsWriter writer(path, std::move(decls), {{"format", "pt"}});
  std::unordered_map<std::string, const WeightSpec*> by_name;
  for (const WeightSpec* w : shard.weights) by_name.emplace(w->name, w);

  const size_t esize = dtype_size(dtype);
  std::vector<uint8_t> buf[2] = {std::vector<uint8_t>(kChunkElements * esize),
                                 std::vector<uint8_t>(kChunkElements * esize)};
  int cur = 0;
  std::future<void> pending;
  for (const io::TensorDecl& d : writer.order()) {
    const WeightSpec& w = *by_name.at(d.name);
    const uint64_t key = weight_stream_key(seed, component, w.name);
    const Tensor table = w.init == WeightInit::SinCosPosEmbed ? sincos_pos_table(w) : Tensor();
    for (int64_t begin = 0; begin < w.numel(); begin += kChunkElements) {
      const int64_t end = std::min(w.numel(), begin + kChunkElements);
      fill_chunk(w, key, table, begin, end, dtype, buf[cur].data());
      if (pending.valid()) pending.get();  // the previous chunk is on disk; its buffer is free again
      const uint64_t n = static_cast<uint64_t>(end - begin) * esize;
      pending = std::async(std::launch::async, [&writer, &on_bytes, name = w.name, data = buf[cur].data(), n] {
        writer.write(name, data, n);
        on_bytes(n);
      });
      cur ^= 1;
    }
  }
  if (pending.valid()) pending.get();
  writer.finish();
}

// Creates `out`, or checks that an existing folder may be written: an existing pipeline is only
// replaced with `overwrite`, and then only the paths this pipeline writes are removed.
void prepare_out_dir(const MakeModelOptions& opt, const PipelineSpec& plan) {
  QDIT_CHECK(!opt.out.empty(), "[make-model] no output folder given (--out DIR)");
  std::error_code ec;
  const fs::path out(opt.out);
  if (fs::exists(out, ec)) {
    QDIT_CHECK(fs::is_directory(out, ec), "[make-model] --out ", opt.out, " exists and is not a folder");
    if (!fs::is_empty(out, ec)) {
      QDIT_CHECK(opt.overwrite, "[make-model] --out ", opt.out,
                 " is not empty; pass --force to replace the pipeline written there");
      fs::remove(out / "model_index.json", ec);
      for (const ComponentSpec& c : plan.components) {
        fs::remove_all(out / c.name, ec);
        if (ec) fail("[make-model] cannot remove ", (out / c.name).string(), ": ", ec.message());
      }
    }
  }
  fs::create_directories(out, ec);
  if (ec) fail("[make-model] cannot create --out ", opt.out, ": ", ec.message());
  // A folder that exists but refuses files (read-only, no permission) fails here, naming it.
  const std::string probe = (out / ".make-model-probe").string();
  std::ofstream(probe) << "";
  QDIT_CHECK(fs::exists(probe, ec), "[make-model] --out ", opt.out, " is not writable");
  fs::remove(probe, ec);
}

uint64_t folder_bytes(const fs::path& dir, int* files) {
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    total += e.file_size();
    ++*files;
  }
  return total;
}

}  // namespace

MakeModelReport make_model(const MakeModelOptions& opt, const MakeModelProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const PipelineSpec plan = plan_pipeline(opt.arch, opt.tiny, opt.dtype);
  prepare_out_dir(opt, plan);
  MakeModelReport report;
  for (const ComponentSpec& c : plan.components) {
    const auto tc = std::chrono::steady_clock::now();
    const fs::path dir = fs::path(opt.out) / c.name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("[make-model] cannot create ", dir.string(), ": ", ec.message());
    if (!c.config_file.empty()) write_json_file((dir / c.config_file).string(), c.config);
    if (c.has_tokenizer) write_tokenizer_folder(dir.string(), c.tokenizer);
    if (!c.weights.empty()) {
      const uint64_t total = c.weight_bytes(opt.dtype);
      uint64_t done = 0;
      auto on_bytes = [&](uint64_t n) {
        done += n;
        if (progress) progress(c.name, done, total);
      };
      const std::vector<Shard> shards =
          split_shards(c, opt.dtype, opt.max_shard_bytes ? opt.max_shard_bytes : c.max_shard_bytes);
      nlohmann::json weight_map = nlohmann::json::object();
      for (const Shard& s : shards) {
        write_shard((dir / s.file).string(), s, c.name, opt.seed, opt.dtype, on_bytes);
        for (const WeightSpec* w : s.weights) weight_map[w->name] = s.file;
      }
      if (shards.size() > 1)
        write_json_file((dir / (c.weights_stem + ".safetensors.index.json")).string(),
                        {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}});
    }
    ComponentReport r;
    r.name = c.name;
    r.parameters = c.parameters();
    r.buffer_elements = c.buffer_elements();
    r.bytes = folder_bytes(dir, &r.files);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tc).count();
    report.components.push_back(r);
  }
  // Written last: a folder without it (an interrupted run) is not taken for a pipeline.
  write_json_file((fs::path(opt.out) / "model_index.json").string(), plan.model_index);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace qdit::api
