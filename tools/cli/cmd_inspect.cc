// `qdit inspect [--tensors] [--variant V] PATH`: what a pipeline or model folder holds (classes,
// scalar config values, tensor counts, dtype histograms, parameters and bytes), without running
// anything. PATH may also be a hub cache folder or a golden case folder (resolve_model_path).
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.h"
#include "qdit/core/error.h"
#include "qdit/api/quantize_pipeline.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/models/registry.h"
#include "qdit/nn/quantizing_factory.h"
#include "quant_args.h"

namespace qdit::cli {
namespace {

using io::ModelFolder;

constexpr size_t kWrap = 100;

std::string human_count(uint64_t n) {
  char buf[32];
  if (n >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else if (n >= 1'000'000) std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  else if (n >= 1'000) std::snprintf(buf, sizeof buf, "%.1f K", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%" PRIu64, n);
  return buf;
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", n / double(1ull << 30));
  else if (n >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", n / double(1ull << 20));
  else if (n >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", n / double(1ull << 10));
  else std::snprintf(buf, sizeof buf, "%" PRIu64 " B", n);
  return buf;
}

// A config value in one short token, or "" when it is not worth a summary line (nested objects).
std::string compact_value(const nlohmann::json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return s.find(' ') == std::string::npos && !s.empty() ? s : "\"" + s + "\"";
  }
  if (v.is_number_float() && !std::isfinite(v.get<double>()))  // dump() would print null
    return std::isnan(v.get<double>()) ? "NaN" : v.get<double>() < 0 ? "-Infinity" : "Infinity";
  if (v.is_primitive()) return v.dump();
  if (v.is_array()) {
    bool scalars = true;
    for (const auto& e : v) scalars &= e.is_primitive();
    if (!scalars) return "[" + std::to_string(v.size()) + " items]";
    std::string s = v.dump();
    return s.size() <= 60 ? s : "[" + std::to_string(v.size()) + " values]";
  }
  return "";
}

// Prints `label` followed by the items, wrapped at kWrap columns with a hanging indent.
void print_wrapped(const std::string& indent, const std::string& label, const std::vector<std::string>& items) {
  std::string line = indent + label;
  const std::string cont(indent.size() + 2, ' ');
  bool first = true;
  for (const auto& it : items) {
    if (!first && line.size() + 1 + it.size() > kWrap) {
      std::printf("%s\n", line.c_str());
      line = cont;
      first = true;
    }
    line += (first ? "" : " ") + it;
    first = false;
  }
  std::printf("%s\n", line.c_str());
}

void print_config(const ModelFolder& m, const std::string& indent) {
  if (!m.has_config()) return;
  std::vector<std::string> items;
  for (const auto& key : m.config().keys()) {
    if (key.empty() || key[0] == '_' || key == "architectures" || key == "tokenizer_class") continue;
    const std::string v = compact_value(m.config().raw()[key]);
    if (!v.empty()) items.push_back(key + "=" + v);
  }
  print_wrapped(indent, m.config_file() + ": ", items);
}

void print_files(const ModelFolder& m, const std::string& indent) {
  std::vector<std::string> items;
  for (const auto& f : m.files()) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(std::filesystem::path(m.path()) / f, ec);
    items.push_back(f + " (" + (ec ? std::string("?") : human_bytes(size)) + ")" +
                    (&f != &m.files().back() ? "," : ""));
  }
  print_wrapped(indent, "files: ", items);
}

struct Totals {
  uint64_t tensors = 0, params = 0, bytes = 0;
};

Totals print_weights(const ModelFolder& m, const std::string& indent, bool list_tensors) {
  Totals t;
  if (!m.has_weights()) return t;
  const auto& w = *m.weights();
  std::array<uint64_t, 10> hist{};
  for (const auto& f : w.files()) {
    for (const auto& r : f->records()) {
      ++hist[static_cast<size_t>(r.dtype)];
      ++t.tensors;
      t.params += static_cast<uint64_t>(r.numel());
      t.bytes += r.nbytes();
    }
  }
  std::string h;
  for (size_t i = 0; i < hist.size(); ++i) {
    if (!hist[i]) continue;
    h += (h.empty() ? "" : ", ") + std::string(dtype_info(static_cast<DType>(i)).safetensors_name) + " x " +
         std::to_string(hist[i]);
  }
  std::string where = m.weights_file();
  if (w.files().size() > 1) where += " (" + std::to_string(w.files().size()) + " shards)";
  std::printf("%sweights: %s: %" PRIu64 " tensors (%s), %s parameters, %s\n", indent.c_str(), where.c_str(),
              t.tensors, h.empty() ? "none" : h.c_str(), human_count(t.params).c_str(), human_bytes(t.bytes).c_str());
  if (list_tensors) {
    size_t width = 0;
    for (const auto& n : w.names()) width = std::max(width, n.size());
    for (const auto& n : w.names()) {
      const io::TensorRecord* r = w.find(n);
      std::printf("%s  %-*s  %-7s %s\n", indent.c_str(), static_cast<int>(width), n.c_str(),
                  dtype_info(r->dtype).safetensors_name, shape_str(r->shape).c_str());
    }
  }
  return t;
}

Totals print_model(const ModelFolder& m, const std::string& indent, bool list_tensors) {
  print_config(m, indent);
  if (!m.has_weights()) print_files(m, indent);
  return print_weights(m, indent, list_tensors);
}

// With --quant: the component's checkpoint size once quantized (quantizes its Linears for real).
void print_quantized_size(const ModelFolder& m, const std::string& component, const quant::PipelineQuantConfig& q) {
  auto rule = q.for_component(component);
  if (!rule || !m.has_weights() || !m.has_config() || !models::has_model(m.class_name())) return;
  if (nn::stored_quantization(m.config())) {
    std::printf("  quantized: already (%s)\n", nn::stored_quantization(m.config())->scheme.c_str());
    return;
  }
  const size_t before = m.weights()->total_bytes(), after = api::quantized_checkpoint_bytes(m, component, *rule);
  std::printf("  with %s: %s -> %s (%.2fx)\n", rule->scheme.c_str(), human_bytes(before).c_str(),
              human_bytes(after).c_str(), double(after) / double(std::max<size_t>(before, 1)));
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  bool list_tensors = false;
  QuantArgs qargs;
  std::string variant, path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[inspect] ", a, " needs a value");
      return argv[++i];
    };
    if (qargs.parse(a, value)) {
      continue;
    } else if (a == "--tensors") {
      list_tensors = true;
    } else if (a == "--variant" && i + 1 < argc) {
      variant = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: qdit inspect [--tensors] [--variant NAME] PATH\n"
                  "  PATH: a pipeline folder (model_index.json), a model folder (config.json + safetensors),\n"
                  "        a Hugging Face hub cache folder (models--org--name or snapshots/<hash>),\n"
                  "        or a golden case folder\n"
                  "  --tensors       list every tensor (name, dtype, shape)\n"
                  "  --variant NAME  read weight variant files such as diffusion_pytorch_model.NAME.safetensors\n"
                  "  --quant SPEC    also print each component's size once quantized (see qdit generate --help)\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      fail("[inspect] unknown option '", a, "' (usage: qdit inspect [--tensors] [--variant NAME] PATH)");
    } else {
      QDIT_CHECK(path.empty(), "[inspect] more than one PATH given: '", path, "' and '", a, "'");
      path = a;
    }
  }
  QDIT_CHECK(!path.empty(), "[inspect] missing PATH (usage: qdit inspect [--tensors] [--variant NAME] PATH)");

  const quant::PipelineQuantConfig qcfg = qargs.resolve();
  const std::string resolved = io::resolve_model_path(path);
  if (resolved != path) std::printf("resolved %s -> %s\n", path.c_str(), resolved.c_str());

  if (!io::is_pipeline_folder(resolved)) {
    const ModelFolder m = ModelFolder::open(resolved, variant);
    std::printf("model %s  %s\n", m.class_name().empty() ? "(no class name)" : m.class_name().c_str(),
                resolved.c_str());
    print_model(m, "  ", list_tensors);
    return 0;
  }

  const io::PipelineFolder p = io::PipelineFolder::open(resolved);
  std::printf("pipeline %s%s  %s\n", p.class_name().c_str(),
              p.diffusers_version().empty() ? "" : (" (diffusers " + p.diffusers_version() + ")").c_str(),
              resolved.c_str());
  Totals all;
  for (const auto& c : p.components()) {
    if (c.is_null()) {
      std::printf("%s: null (not saved with the pipeline)\n", c.name.c_str());
      continue;
    }
    std::printf("%s: %s %s\n", c.name.c_str(), c.library.c_str(), c.class_name.c_str());
    const ModelFolder m = p.open_component(c.name, variant);
    if (!m.class_name().empty() && m.class_name() != c.class_name)
      std::printf("  note: %s names class %s\n", m.config_file().c_str(), m.class_name().c_str());
    const Totals t = print_model(m, "  ", list_tensors);
    print_quantized_size(m, c.name, qcfg);
    all.tensors += t.tensors;
    all.params += t.params;
    all.bytes += t.bytes;
  }
  std::printf("total: %zu components, %" PRIu64 " tensors, %s parameters, %s\n", p.components().size(), all.tensors,
              human_count(all.params).c_str(), human_bytes(all.bytes).c_str());
  return 0;
}

}  // namespace qdit::cli
