// `qdit make-model`: writes a diffusers-layout pipeline folder with the real architecture configs of
// PixArt-Sigma, SD3-medium, Flux.1 dev/schnell or AuraFlow (or tiny ones with the same structure)
// and deterministic random weights, for benchmarks and tests where real weights are unavailable.
//
// plan_pipeline() describes everything (configs, every tensor's name, shape and initialisation,
// tokenizers) without writing; make_model() writes it, streaming each tensor into safetensors
// (sharded like save_pretrained) so no component is ever held in memory.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::api {

// How a tensor's values are drawn. Normal uses `std`; SinCosPosEmbed is SD3's persistent 2-D
// sin-cos table (grid x grid positions, diffusers base_size `sincos_base`, interpolation 1).
enum class WeightInit { Normal, Ones, Zeros, SinCosPosEmbed };

struct WeightSpec {
  std::string name;
  Shape shape;
  WeightInit init = WeightInit::Normal;
  float std = 0.0f;
  bool buffer = false;       // a persistent buffer, stored but not a parameter (SD3 pos_embed)
  int64_t sincos_grid = 0;   // SinCosPosEmbed only
  float sincos_base = 0.0f;  // SinCosPosEmbed only
  int64_t numel() const { return shape_numel(shape); }
};

// Synthetic tokenizer files: T5 = spiece.model with `pieces` sentencepiece pieces (+ the extra
// ids T5Tokenizer adds); CLIP = byte-level vocab.json/merges.txt with `pieces` vocab entries.
struct TokenizerSpec {
  enum class Kind { T5, Clip } kind = Kind::T5;
  int64_t pieces = 0;
  std::string tokenizer_class;  // written to tokenizer_config.json
  std::string pad_token;        // CLIP: "<|endoftext|>" or "!" (SDXL-style bigG tokenizer)
  int64_t model_max_length = 0;
};

struct ComponentSpec {
  std::string name;        // folder and model_index.json key: "transformer", "tokenizer_2", ...
  std::string library;     // "diffusers" / "transformers"
  std::string class_name;  // model_index.json class
  std::string config_file;             // "config.json", "scheduler_config.json", "" (tokenizers)
  nlohmann::json config;               // its content (written with sorted keys, like save_pretrained)
  std::string weights_stem;            // "diffusion_pytorch_model", "model" or "" (no weights)
  uint64_t max_shard_bytes = 0;        // save_pretrained's default for the library
  std::vector<WeightSpec> weights;
  bool has_tokenizer = false;
  TokenizerSpec tokenizer;

  int64_t parameters() const;  // elements of every non-buffer tensor
  int64_t buffer_elements() const;
  uint64_t weight_bytes(DType dtype) const;  // tensor payload
};

struct PipelineSpec {
  std::string arch;
  bool tiny = false;
  DType dtype = DType::BF16;
  nlohmann::json model_index;
  std::vector<ComponentSpec> components;
  const ComponentSpec* find(const std::string& name) const;
};

// "pixart-sigma", "sd3-medium", "flux-dev", "flux-schnell", "auraflow".
const std::vector<std::string>& make_model_archs();
// Throws qdit::Error naming the arch (and listing the known ones) when it is unknown, or when
// dtype is not bf16/f32.
PipelineSpec plan_pipeline(const std::string& arch, bool tiny, DType dtype);

struct MakeModelOptions {
  std::string arch;
  std::string out;            // the pipeline folder to write (created; must not hold a pipeline yet)
  DType dtype = DType::BF16;  // stored weight dtype: bf16 or f32
  uint64_t seed = 0;
  bool tiny = false;
  uint64_t max_shard_bytes = 0;  // 0: save_pretrained's defaults (diffusers 10 GB, transformers 5 GB)
  bool overwrite = false;        // replace an existing pipeline folder at `out`
};

struct ComponentReport {
  std::string name;
  int64_t parameters = 0, buffer_elements = 0;
  uint64_t bytes = 0;  // files written
  int files = 0;
  double seconds = 0;
};

struct MakeModelReport {
  std::vector<ComponentReport> components;
  double seconds = 0;
};

// (component, bytes written so far, bytes in total) after every chunk; called from the writer
// thread, one call at a time.
using MakeModelProgress = std::function<void(const std::string&, uint64_t, uint64_t)>;

MakeModelReport make_model(const MakeModelOptions& opt, const MakeModelProgress& progress = {});

// The per-tensor key of the value stream: seed, component folder and tensor name.
uint64_t weight_stream_key(uint64_t seed, const std::string& component, const std::string& name);
// The values make_model writes for `w` (as f32), elements [begin, end): a pure function of
// (key, index), so the result is the same for any thread count or chunking.
void fill_weight(const WeightSpec& w, uint64_t key, int64_t begin, int64_t end, float* out);
// The whole table of a SinCosPosEmbed tensor, [grid * grid, dim] f32.
Tensor sincos_pos_table(const WeightSpec& w);

}  // namespace qdit::api
