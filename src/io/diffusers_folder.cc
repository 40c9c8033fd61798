#include "qdit/io/diffusers_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "qdit/core/error.h"

namespace qdit::io {

namespace fs = std::filesystem;

namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::vector<std::string> list_files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::error_code ec2;
    if (fs::is_regular_file(e.path(), ec2)) out.push_back(e.path().filename().string());  // follows symlinks
  }
  QDIT_CHECK(!ec, "[", dir.string(), "] cannot list folder: ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

void require_dir(const std::string& path, const char* what) {
  std::error_code ec;
  QDIT_CHECK(fs::exists(path, ec), "[", path, "] ", what, " not found");
  QDIT_CHECK(fs::is_directory(path, ec), "[", path, "] expected a ", what, " (a directory), found a file");
}

// Weight file names for a variant, in lookup order (diffusers' and transformers' naming).
std::vector<std::string> weight_candidates(const std::string& variant) {
  if (variant.empty()) {
    return {"diffusion_pytorch_model.safetensors", "model.safetensors",
            "diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json"};
  }
  return {"diffusion_pytorch_model." + variant + ".safetensors", "model." + variant + ".safetensors",
          "diffusion_pytorch_model.safetensors.index." + variant + ".json",
          "model.safetensors.index." + variant + ".json"};
}

bool is_pickle(const std::string& f) {
  for (const char* ext : {".bin", ".pt", ".pth", ".ckpt", ".pkl"})
    if (has_suffix(f, ext)) return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ModelFolder

ModelFolder ModelFolder::open(const std::string& path, const std::string& variant) {
  require_dir(path, "model folder");
  ModelFolder m;
  m.path_ = path;
  m.files_ = list_files(path);
  const fs::path dir(path);
  auto has_file = [&](const std::string& f) { return std::binary_search(m.files_.begin(), m.files_.end(), f); };

  for (const char* cfg : {"config.json", "scheduler_config.json", "tokenizer_config.json"}) {
    if (!has_file(cfg)) continue;
    m.config_file_ = cfg;
    m.config_ = JsonConfig::load((dir / cfg).string());
    break;
  }
  if (m.has_config()) {
    const JsonConfig& c = m.config_;
    if (c.has("_class_name")) {
      m.class_name_ = c.get<std::string>("_class_name");
    } else if (c.has("architectures")) {
      auto archs = c.get<std::vector<std::string>>("architectures");
      QDIT_CHECK(!archs.empty(), "[", c.path(), "] key 'architectures' is an empty list");
      m.class_name_ = archs[0];
    } else if (c.has("tokenizer_class")) {
      m.class_name_ = c.get<std::string>("tokenizer_class");
    }
  }

  for (const std::string& cand : weight_candidates(variant)) {
    if (!has_file(cand)) continue;
    m.weights_file_ = cand;
    m.weights_ = SafetensorsWeights::open((dir / cand).string());
    break;
  }
  if (!m.weights_) {
    std::vector<std::string> st, pickles, variants;
    static const std::regex variant_re(
        R"(^(?:diffusion_pytorch_model|model)(?:\.([A-Za-z0-9_]+)\.safetensors|\.safetensors\.index\.([A-Za-z0-9_]+)\.json)$)");
    for (const std::string& f : m.files_) {
      std::smatch mt;
      if (std::regex_match(f, mt, variant_re)) variants.push_back(mt[1].matched ? mt[1].str() : mt[2].str());
      if (has_suffix(f, ".safetensors")) st.push_back(f);
      if (is_pickle(f)) pickles.push_back(f);
    }
    if (!variant.empty() && !(st.empty() && pickles.empty())) {
      fail("[", path, "] no weights for variant '", variant, "': expected ", weight_candidates(variant)[0], " or ",
           weight_candidates(variant)[1], "; found ", join(st.empty() ? pickles : st));
    }
    if (!variants.empty()) {
      std::sort(variants.begin(), variants.end());
      variants.erase(std::unique(variants.begin(), variants.end()), variants.end());
      fail("[", path, "] weights exist only as variant(s) ", join(variants),
           "; open the folder with that variant (e.g. --variant ", variants[0], ")");
    }
    if (!st.empty()) {
      fail("[", path, "] unrecognised safetensors file(s) ", join(st), ": a save_pretrained folder holds ",
           "diffusion_pytorch_model.safetensors or model.safetensors (or their .index.json shards)");
    }
    if (!pickles.empty()) {
      fail("[", path, "] holds only pickled checkpoints (", join(pickles), "). qdit never loads pickled ",
           "checkpoints: unpickling can run arbitrary code. Convert them to safetensors first, e.g. ",
           "Model.from_pretrained(dir).save_pretrained(dir, safe_serialization=True) in Python.");
    }
  }
  QDIT_CHECK(m.has_config() || m.has_weights() || !m.files_.empty(), "[", path,
             "] empty folder: no config.json, no weights, no files");
  return m;
}

const JsonConfig& ModelFolder::config() const {
  QDIT_CHECK(has_config(), "[", path_, "] has no config.json, scheduler_config.json or tokenizer_config.json");
  return config_;
}

const std::shared_ptr<const SafetensorsWeights>& ModelFolder::weights() const {
  QDIT_CHECK(weights_ != nullptr, "[", path_, "] has no weights (expected diffusion_pytorch_model.safetensors or ",
             "model.safetensors; files: ", files_.empty() ? std::string("none") : join(files_), ")");
  return weights_;
}

// ---------------------------------------------------------------------------------------------
// PipelineFolder

PipelineFolder PipelineFolder::open(const std::string& path) {
  require_dir(path, "pipeline folder");
  const fs::path index_path = fs::path(path) / "model_index.json";
  std::error_code ec;
  QDIT_CHECK(fs::is_regular_file(index_path, ec), "[", path, "] not a pipeline folder: model_index.json not found");
  PipelineFolder p;
  p.path_ = path;
  p.index_ = JsonConfig::load(index_path.string());
  const std::string& ip = p.index_.path();
  QDIT_CHECK(p.index_.raw().contains("_class_name"), "[", ip, "] missing key '_class_name' (the pipeline class)");
  p.class_name_ = p.index_.get<std::string>("_class_name");
  p.diffusers_version_ = p.index_.get_or<std::string>("_diffusers_version", "");

  // Re-read keeping key order: components are listed in file order.
  std::ifstream f(index_path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  const nlohmann::ordered_json ordered = parse_ordered_json(ss.str(), ip);
  for (auto it = ordered.begin(); it != ordered.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key.empty() || key[0] == '_' || !v.is_array()) continue;
    const bool names_only = std::all_of(v.begin(), v.end(), [](const auto& e) { return e.is_string() || e.is_null(); });
    const bool library_first = v.size() == 2 && v[0].is_string() && !v[1].is_string() && !v[1].is_null();
    QDIT_CHECK(!library_first, "[", ip, "] component '", key, "': the class name must be a string or null, found ",
               v[1].dump());
    if (!names_only) continue;  // a list-valued pipeline option, not a component
    QDIT_CHECK(v.size() == 2, "[", ip, "] component '", key,
               "' must be [library, class] with two strings or nulls, found ", v.dump());
    QDIT_CHECK(v[0].is_null() == v[1].is_null(), "[", ip, "] component '", key,
               "' must have both library and class, or neither (null), found ", v.dump());
    PipelineComponent c;
    c.name = key;
    if (!v[0].is_null()) {
      c.library = v[0].get<std::string>();
      c.class_name = v[1].get<std::string>();
      QDIT_CHECK(!c.class_name.empty(), "[", ip, "] component '", key, "' has an empty class name");
    }
    c.dir = (fs::path(path) / key).string();
    c.exists = fs::is_directory(c.dir, ec);
    p.components_.push_back(std::move(c));
  }
  return p;
}

const PipelineComponent* PipelineFolder::find_component(const std::string& name) const {
  for (const auto& c : components_)
    if (c.name == name) return &c;
  return nullptr;
}

ModelFolder PipelineFolder::open_component(const std::string& name, const std::string& variant) const {
  const PipelineComponent* c = find_component(name);
  if (!c) {
    std::vector<std::string> names;
    for (const auto& x : components_) names.push_back(x.name);
    fail("[", index_.path(), "] no component '", name, "' (components: ", join(names), ")");
  }
  QDIT_CHECK(!c->is_null(), "[", index_.path(), "] component '", name,
             "' is [null, null]: the pipeline was saved without it");
  QDIT_CHECK(c->exists, "[", index_.path(), "] component '", name, "' (", c->library, " ", c->class_name,
             ") has no folder: ", c->dir, " is missing");
  return ModelFolder::open(c->dir, variant);
}

// ---------------------------------------------------------------------------------------------

bool is_pipeline_folder(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(path) / "model_index.json", ec);
}

std::string resolve_model_path(const std::string& path) {
  std::error_code ec;
  QDIT_CHECK(fs::exists(path, ec), "[", path, "] model path not found");
  fs::path p(path);

  // Hub cache repo: models--org--name/{refs/main, snapshots/<hash>/, blobs/}.
  if (fs::is_directory(p / "snapshots", ec)) {
    const fs::path ref = p / "refs" / "main";
    fs::path snap;
    if (fs::is_regular_file(ref, ec)) {
      std::ifstream f(ref);
      std::string hash;
      f >> hash;
      QDIT_CHECK(!hash.empty(), "[", ref.string(), "] is empty; expected a snapshot hash");
      snap = p / "snapshots" / hash;
      QDIT_CHECK(fs::is_directory(snap, ec), "[", ref.string(), "] names snapshot ", hash,
                 " but ", snap.string(), " does not exist (incomplete download?)");
    } else {
      std::vector<fs::path> snaps;
      for (const auto& e : fs::directory_iterator(p / "snapshots", ec))
        if (fs::is_directory(e.path())) snaps.push_back(e.path());
      QDIT_CHECK(snaps.size() == 1, "[", path, "] hub cache folder without refs/main has ", snaps.size(),
                 " snapshots; pass the snapshots/<hash> folder to use");
      snap = snaps[0];
    }
    return snap.string();
  }

  // Golden case folder.
  if (fs::is_regular_file(p / "case.json", ec)) {
    for (const char* sub : {"pipeline", "transformer", "text_encoder", "vae", "scheduler", "tokenizer"})
      if (fs::is_directory(p / sub, ec)) return (p / sub).string();
  }
  return path;
}

}  // namespace qdit::io
