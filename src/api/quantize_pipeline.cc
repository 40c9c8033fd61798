#include "qdit/api/quantize_pipeline.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "qdit/core/error.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/io/safetensors.h"
#include "qdit/models/registry.h"
#include "qdit/nn/quantizing_factory.h"

namespace qdit::api {

namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream o(p);
  o << text;
  QDIT_CHECK(o.good(), "[quantize] cannot write ", p.string());
}

size_t file_bytes(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") n += e.file_size();
  return n;
}

// Builds the model with a recording factory to learn which tensors are Linear weights and get
// their quantized parts, then writes the component's tensors with those weights replaced.
pipelines::ComponentStats quantize_component(const io::ModelFolder& f, const std::string& name,
                                             const quant::ComponentQuant& rule, const fs::path& out_dir) {
  QDIT_CHECK(!nn::stored_quantization(f.config()), "[quantize] ", f.path(), " is already quantized");
  std::map<std::string, quant::QuantizedWeight> quantized;
  DType weight_dtype = DType::F32;
  auto sink = [&](const std::string& path, const quant::QuantizedWeight& q) {
    quantized.emplace(path, q);
    weight_dtype = q.source_dtype;
  };
  nn::ModuleContext ctx;
  ctx.linear_factory = std::make_shared<nn::QuantizingLinearFactory>(rule, sink, /*record_only=*/true);
  auto model = models::create_model(f.class_name(), models::ModelSource{name, &f.config(), f.weights(), ctx});
  model.reset();

  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& t : f.weights()->names()) {
    const size_t dot = t.rfind('.');
    auto it = dot != std::string::npos && t.compare(dot, std::string::npos, ".weight") == 0
                  ? quantized.find(t.substr(0, dot))
                  : quantized.end();
    if (it == quantized.end()) {
      tensors.emplace_back(t, f.weights()->tensor(t));
      continue;
    }
    for (const auto& [part, value] : it->second.parts) tensors.emplace_back(it->first + "." + part, value);
  }
  fs::create_directories(out_dir);
  const std::string file = f.weights_file().rfind("model", 0) == 0 ? "model.safetensors"
                                                                      : "diffusion_pytorch_model.safetensors";
  io::save_safetensors((out_dir / file).string(), tensors, {{"format", "pt"}, {"quantized_by", "qdit"}});

  nlohmann::json config = f.config().raw();
  nn::StoredQuantization stored{rule.scheme, weight_dtype, rule.exclude};
  config["quantization_config"] = nn::stored_quantization_json(stored);
  write_text(out_dir / f.config_file(), config.dump(2) + "\n");
  // Files other than weights and config (e.g. a generation config) are copied as they are.
  for (const auto& file_name : f.files()) {
    if (file_name == f.config_file() || file_name.find(".safetensors") != std::string::npos) continue;
    fs::copy_file(fs::path(f.path()) / file_name, out_dir / file_name, fs::copy_options::overwrite_existing);
  }
  return {name, f.class_name(), stored.scheme, f.weights()->total_bytes(), file_bytes(out_dir)};
}

}  // namespace

size_t quantized_checkpoint_bytes(const io::ModelFolder& f, const std::string& component,
                                  const quant::ComponentQuant& rule) {
  size_t replaced = 0, parts = 0;
  auto sink = [&](const std::string& path, const quant::QuantizedWeight& q) {
    replaced += f.weights()->find(path + ".weight")->nbytes();
    parts += q.bytes();
  };
  nn::ModuleContext ctx;
  ctx.linear_factory = std::make_shared<nn::QuantizingLinearFactory>(rule, sink, /*record_only=*/true);
  models::create_model(f.class_name(), models::ModelSource{component, &f.config(), f.weights(), ctx});
  return f.weights()->total_bytes() - replaced + parts;
}

std::vector<pipelines::ComponentStats> quantize_pipeline(const std::string& src_in, const std::string& out,
                                                         const quant::PipelineQuantConfig& cfg,
                                                         const QuantizeOptions& opt) {
  QDIT_CHECK(!cfg.empty(), "[quantize] no quantization given (--quant or --quant-config)");
  const std::string src = io::resolve_model_path(src_in);
  io::PipelineFolder pipe = io::PipelineFolder::open(src);
  const fs::path out_dir(out);
  QDIT_CHECK(fs::weakly_canonical(out_dir) != fs::weakly_canonical(src), "[quantize] --out must differ from the model");
  if (fs::exists(out_dir) && !fs::is_empty(out_dir))
    QDIT_CHECK(opt.overwrite, "[quantize] output folder ", out, " is not empty (pass --overwrite to replace it)");
  for (const auto& [component, rule] : cfg.mapping)
    QDIT_CHECK(pipe.find_component(component), "[quantize] ", src, "/model_index.json has no component '", component,
               "' to quantize");
  for (const auto& component : cfg.components)
    QDIT_CHECK(pipe.find_component(component), "[quantize] ", src, "/model_index.json has no component '", component,
               "' to quantize");
  fs::create_directories(out_dir);
  fs::copy_file(fs::path(src) / "model_index.json", out_dir / "model_index.json", fs::copy_options::overwrite_existing);

  std::vector<pipelines::ComponentStats> rows;
  int done = 0;
  const int total = static_cast<int>(pipe.components().size());
  for (const auto& c : pipe.components()) {
    if (opt.progress) opt.progress(c.name, done, total);
    ++done;
    if (c.is_null() || !c.exists) continue;
    const fs::path dst = out_dir / c.name;
    io::ModelFolder f = pipe.open_component(c.name);
    auto rule = cfg.for_component(c.name);
    const bool is_model = f.has_weights() && f.has_config() && models::has_model(f.class_name());
    if (rule && is_model) {
      if (fs::exists(dst)) fs::remove_all(dst);
      rows.push_back(quantize_component(f, c.name, *rule, dst));
      continue;
    }
    if (fs::exists(dst)) fs::remove_all(dst);
    fs::copy(fs::path(src) / c.name, dst, fs::copy_options::recursive);
    if (f.has_weights()) {
      const size_t bytes = f.weights()->total_bytes();
      rows.push_back({c.name, f.class_name(), "none", bytes, bytes});
    }
  }
  if (opt.progress) opt.progress("", total, total);
  return rows;
}

}  // namespace qdit::api
