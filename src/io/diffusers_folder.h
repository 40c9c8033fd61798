// Folders written by diffusers/transformers `save_pretrained`: ModelFolder (one component:
// config + safetensors weights), PipelineFolder (model_index.json + component folders), and
// resolve_model_path (Hugging Face hub cache layouts, golden case folders). Used by models,
// pipelines and the `qdit inspect` CLI.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qdit/io/json_config.h"
#include "qdit/io/weight_source.h"

namespace qdit::io {

class ModelFolder {
 public:
  // Opens a component folder. Config: the first of config.json, scheduler_config.json,
  // tokenizer_config.json. Class: `_class_name`, else `architectures[0]` (transformers), else
  // `tokenizer_class`. Weights, in order: diffusion_pytorch_model.safetensors,
  // model.safetensors, then their .safetensors.index.json sharded forms; with a variant
  // ("fp16"), diffusion_pytorch_model.<variant>.safetensors etc. instead. Pickled checkpoints
  // (.bin/.pt/.pth/.ckpt) are refused; a folder without weights (tokenizer, scheduler) is fine.
  static ModelFolder open(const std::string& path, const std::string& variant = "");

  const std::string& path() const { return path_; }
  const std::string& class_name() const { return class_name_; }  // "" when no config names one
  bool has_config() const { return !config_file_.empty(); }
  const std::string& config_file() const { return config_file_; }  // "config.json", ... or ""
  const JsonConfig& config() const;                                // throws when !has_config()

  bool has_weights() const { return weights_ != nullptr; }
  const std::string& weights_file() const { return weights_file_; }  // file or index name, or ""
  // Throws naming the folder when it has no weights.
  const std::shared_ptr<const SafetensorsWeights>& weights() const;

  // Regular files directly in the folder (symlinks followed), sorted by name.
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::string path_, class_name_, config_file_, weights_file_;
  JsonConfig config_;
  std::shared_ptr<const SafetensorsWeights> weights_;
  std::vector<std::string> files_;
};

struct PipelineComponent {
  std::string name;        // key in model_index.json, also the folder name
  std::string library;     // "diffusers", "transformers", or "" for null
  std::string class_name;  // "" for null ([null, null]: not saved with the pipeline)
  std::string dir;         // <pipeline>/<name>
  bool exists = false;     // dir is a directory
  bool is_null() const { return class_name.empty(); }
};

class PipelineFolder {
 public:
  // Reads <path>/model_index.json: `_class_name` (required), `_diffusers_version`, and the
  // component entries ([library, class], strings or nulls) in file order. Other entries are
  // pipeline options (e.g. "force_zeros_for_empty_prompt": true), kept in model_index().
  static PipelineFolder open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::string& class_name() const { return class_name_; }
  const std::string& diffusers_version() const { return diffusers_version_; }  // "" if absent
  const JsonConfig& model_index() const { return index_; }
  const std::vector<PipelineComponent>& components() const { return components_; }
  const PipelineComponent* find_component(const std::string& name) const;

  // Opens a component as a ModelFolder. Errors (naming model_index.json) for an unknown
  // name, a null component, or a missing folder.
  ModelFolder open_component(const std::string& name, const std::string& variant = "") const;

 private:
  std::string path_, class_name_, diffusers_version_;
  JsonConfig index_;
  std::vector<PipelineComponent> components_;
};

// True when `path` holds a model_index.json.
bool is_pipeline_folder(const std::string& path);

// Maps what a user may pass as a model path to the folder to open:
//  - a hub cache repo folder `models--org--name`: refs/main -> snapshots/<hash> (or the only
//    snapshot when there is no refs/main); snapshot files may be symlinks into ../../blobs/;
//  - a golden case folder (case.json plus pipeline/, transformer/, text_encoder/, vae/,
//    scheduler/ or tokenizer/, first match in that order): that subfolder;
//  - anything else that exists: unchanged. A missing path is an error.
std::string resolve_model_path(const std::string& path);

}  // namespace qdit::io
