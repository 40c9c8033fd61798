// ModelFolder / PipelineFolder / resolve_model_path: golden folders, weight lookup order and
// variants, pickled-only refusal, malformed model_index.json and config.json, and a fake
// Hugging Face hub cache with symlinked blobs.
#include "qdit/io/diffusers_folder.h"

#include "test_util.h"

namespace qdit::io {
namespace {

using testing::TempDir;
using testing::error_of;
namespace fs = std::filesystem;

bool contains(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

// "[path]", built by appending: GCC 12's -Wrestrict misfires on "[" + s + "]" (bug 105329).
std::string bracketed(const std::string& path) {
  std::string s = "[";
  s += path;
  s += ']';
  return s;
}

const std::string kGolden = std::string(QDIT_TEST_DATA_DIR) + "/golden";

void small_weights(const std::string& path, float v = 1.f) {
  save_safetensors(path, {{"w", Tensor::from_vector({v, v + 1}, {2})}});
}

TEST(ModelFolder, GoldenComponents) {
  const ModelFolder t = ModelFolder::open(kGolden + "/transformer_pixart_sigma/transformer");
  EXPECT_EQ(t.class_name(), "PixArtTransformer2DModel");
  EXPECT_EQ(t.config_file(), "config.json");
  EXPECT_EQ(t.weights_file(), "diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(t.has_weights());
  const int layers = t.config().get<int>("num_layers");
  int blocks = 0;
  for (const auto& n : t.weights()->names())
    if (contains(n, ".attn1.to_q.weight")) ++blocks;
  EXPECT_EQ(blocks, layers);
  EXPECT_EQ(t.files(), (std::vector<std::string>{"config.json", "diffusion_pytorch_model.safetensors"}));

  const ModelFolder te = ModelFolder::open(kGolden + "/text_encoder_t5/text_encoder");
  EXPECT_EQ(te.class_name(), "T5EncoderModel");  // from architectures[0]
  EXPECT_EQ(te.weights_file(), "model.safetensors");
  const int64_t d_model = te.config().get<int64_t>("d_model");
  EXPECT_EQ(te.weights()->find("shared.weight")->shape, (Shape{te.config().get<int64_t>("vocab_size"), d_model}));

  const ModelFolder s = ModelFolder::open(kGolden + "/scheduler_flowmatch_sd3/scheduler");
  EXPECT_EQ(s.class_name(), "FlowMatchEulerDiscreteScheduler");
  EXPECT_EQ(s.config_file(), "scheduler_config.json");
  EXPECT_FALSE(s.has_weights());
  auto msg = error_of([&] { s.weights(); });
  EXPECT_TRUE(contains(msg, "has no weights")) << msg;

  const ModelFolder tok = ModelFolder::open(kGolden + "/tokenizer_t5/tokenizer");
  EXPECT_EQ(tok.class_name(), "T5Tokenizer");
  EXPECT_EQ(tok.config_file(), "tokenizer_config.json");
  EXPECT_FALSE(tok.has_weights());
  EXPECT_TRUE(std::find(tok.files().begin(), tok.files().end(), "spiece.model") != tok.files().end());
}

TEST(ModelFolder, WeightLookupOrderAndShards) {
  TempDir dir;
  const std::string d = dir.path().string();
  testing::write_bytes(dir.file("config.json"), R"({"_class_name": "X"})");
  small_weights(dir.file("model.safetensors"), 5.f);
  EXPECT_EQ(ModelFolder::open(d).weights_file(), "model.safetensors");
  small_weights(dir.file("diffusion_pytorch_model.safetensors"), 1.f);
  const ModelFolder m = ModelFolder::open(d);
  EXPECT_EQ(m.weights_file(), "diffusion_pytorch_model.safetensors");
  EXPECT_EQ(m.weights()->tensor("w").item_f32(0), 1.f);
  // A pickle next to safetensors is simply ignored.
  testing::write_bytes(dir.file("diffusion_pytorch_model.bin"), "not loaded");
  EXPECT_EQ(ModelFolder::open(d).weights_file(), "diffusion_pytorch_model.safetensors");

  TempDir sharded;
  testing::write_bytes(sharded.file("config.json"), R"({"architectures": ["T5EncoderModel"]})");
  small_weights(sharded.file("model-00001-of-00002.safetensors"));
  save_safetensors(sharded.file("model-00002-of-00002.safetensors"), {{"v", Tensor::from_vector({3.f}, {1})}});
  testing::write_bytes(sharded.file("model.safetensors.index.json"),
                       R"({"weight_map": {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}})");
  const ModelFolder s = ModelFolder::open(sharded.path().string());
  EXPECT_EQ(s.weights_file(), "model.safetensors.index.json");
  EXPECT_EQ(s.class_name(), "T5EncoderModel");
  EXPECT_EQ(s.weights()->files().size(), 2u);
  EXPECT_EQ(s.weights()->tensor("v").item_f32(0), 3.f);
}

TEST(ModelFolder, Variants) {
  TempDir dir;
  const std::string d = dir.path().string();
  testing::write_bytes(dir.file("config.json"), R"({"_class_name": "X"})");
  small_weights(dir.file("diffusion_pytorch_model.fp16.safetensors"), 7.f);
  auto msg = error_of([&] { ModelFolder::open(d); });
  EXPECT_TRUE(contains(msg, bracketed(d) + " weights exist only as variant(s) fp16")) << msg;
  const ModelFolder v = ModelFolder::open(d, "fp16");
  EXPECT_EQ(v.weights_file(), "diffusion_pytorch_model.fp16.safetensors");
  EXPECT_EQ(v.weights()->tensor("w").item_f32(0), 7.f);
  small_weights(dir.file("diffusion_pytorch_model.safetensors"), 1.f);
  EXPECT_EQ(ModelFolder::open(d).weights_file(), "diffusion_pytorch_model.safetensors");
  EXPECT_EQ(ModelFolder::open(d, "fp16").weights_file(), "diffusion_pytorch_model.fp16.safetensors");
  msg = error_of([&] { ModelFolder::open(d, "bf16"); });
  EXPECT_TRUE(contains(msg, "no weights for variant 'bf16'")) << msg;
  EXPECT_TRUE(contains(msg, "diffusion_pytorch_model.bf16.safetensors")) << msg;
}

TEST(ModelFolder, PickledOnlyIsRefused) {
  for (const char* f : {"pytorch_model.bin", "diffusion_pytorch_model.bin", "model.pt", "weights.pth", "sd.ckpt"}) {
    SCOPED_TRACE(f);
    TempDir dir;
    testing::write_bytes(dir.file("config.json"), R"({"_class_name": "X"})");
    testing::write_bytes(dir.file(f), "PK\x03\x04 pretend zip");
    const std::string msg = error_of([&] { ModelFolder::open(dir.path().string()); });
    EXPECT_TRUE(contains(msg, bracketed(dir.path().string()) + " holds only pickled checkpoints (" + f + ")")) << msg;
    EXPECT_TRUE(contains(msg, "never loads pickled checkpoints")) << msg;
    EXPECT_TRUE(contains(msg, "Convert them to safetensors")) << msg;
  }
}

TEST(ModelFolder, BadFolders) {
  TempDir dir;
  const std::string d = dir.path().string();
  auto msg = error_of([&] { ModelFolder::open(dir.file("nope")); });
  EXPECT_TRUE(contains(msg, "nope] model folder not found")) << msg;
  testing::write_bytes(dir.file("file"), "x");
  msg = error_of([&] { ModelFolder::open(dir.file("file")); });
  EXPECT_TRUE(contains(msg, "expected a model folder (a directory), found a file")) << msg;
  fs::create_directories(dir.file("empty"));
  msg = error_of([&] { ModelFolder::open(dir.file("empty")); });
  EXPECT_TRUE(contains(msg, "empty folder")) << msg;

  small_weights(dir.file("flux1-dev.safetensors"));
  msg = error_of([&] { ModelFolder::open(d); });
  EXPECT_TRUE(contains(msg, "unrecognised safetensors file(s) flux1-dev.safetensors")) << msg;
  fs::remove(dir.file("flux1-dev.safetensors"));

  testing::write_bytes(dir.file("config.json"), "{\"_class_name\": \"X\",\n \"num_layers\": 2,,\n}");
  msg = error_of([&] { ModelFolder::open(d); });
  EXPECT_TRUE(contains(msg, bracketed(dir.file("config.json")) + " malformed JSON: parse error at line 2, column 18")) << msg;
  testing::write_bytes(dir.file("config.json"), R"({"_class_name": 3})");
  msg = error_of([&] { ModelFolder::open(d); });
  EXPECT_TRUE(contains(msg, bracketed(dir.file("config.json")) + " key '_class_name': expected a string")) << msg;
  testing::write_bytes(dir.file("config.json"), R"({"architectures": []})");
  msg = error_of([&] { ModelFolder::open(d); });
  EXPECT_TRUE(contains(msg, "key 'architectures' is an empty list")) << msg;
  testing::write_bytes(dir.file("config.json"), R"(["T5EncoderModel"])");
  msg = error_of([&] { ModelFolder::open(d); });
  EXPECT_TRUE(contains(msg, bracketed(dir.file("config.json")) + " expected a JSON object")) << msg;
  // A corrupt weights file is reported with its path.
  testing::write_bytes(dir.file("config.json"), R"({"_class_name": "X"})");
  testing::write_bytes(dir.file("model.safetensors"), "abc");
  msg = error_of([&] { ModelFolder::open(d); });
  EXPECT_TRUE(contains(msg, bracketed(dir.file("model.safetensors")) + " not a safetensors file")) << msg;
}

TEST(PipelineFolder, GoldenSd3Text) {
  const std::string root = kGolden + "/pipeline_sd3_text/pipeline";
  ASSERT_TRUE(is_pipeline_folder(root));
  const PipelineFolder p = PipelineFolder::open(root);
  EXPECT_EQ(p.class_name(), "StableDiffusion3Pipeline");
  EXPECT_EQ(p.diffusers_version(), "0.30.3");
  std::vector<std::string> names;
  for (const auto& c : p.components()) {
    names.push_back(c.name);
    EXPECT_TRUE(c.exists) << c.name;
    EXPECT_EQ(c.dir, root + "/" + c.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"scheduler", "text_encoder", "text_encoder_2", "text_encoder_3",
                                             "tokenizer", "tokenizer_2", "tokenizer_3", "transformer", "vae"}));
  const PipelineComponent* t = p.find_component("transformer");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->library, "diffusers");
  EXPECT_EQ(t->class_name, "SD3Transformer2DModel");
  EXPECT_EQ(p.find_component("text_encoder_3")->library, "transformers");
  for (const auto& c : p.components()) {
    const ModelFolder m = p.open_component(c.name);
    EXPECT_EQ(m.class_name(), c.class_name) << c.name;
    EXPECT_EQ(m.has_weights(), c.name.rfind("text_encoder", 0) == 0 || c.name == "transformer" || c.name == "vae");
  }
  auto msg = error_of([&] { p.open_component("unet"); });
  EXPECT_TRUE(contains(msg, "model_index.json] no component 'unet' (components: scheduler, text_encoder")) << msg;
}

TEST(PipelineFolder, NullComponentsAndMissingFolders) {
  const PipelineFolder p = PipelineFolder::open(kGolden + "/pipeline_pixart_sigma/pipeline");
  const PipelineComponent* tok = p.find_component("tokenizer");
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->is_null());
  EXPECT_FALSE(tok->exists);
  auto msg = error_of([&] { p.open_component("tokenizer"); });
  EXPECT_TRUE(contains(msg, "model_index.json] component 'tokenizer' is [null, null]")) << msg;

  TempDir dir;
  testing::write_bytes(dir.file("model_index.json"), R"({"_class_name": "FluxPipeline", "vae": ["diffusers", "AutoencoderKL"],
     "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]})");
  fs::create_directories(dir.file("scheduler"));
  testing::write_bytes(dir.file("scheduler/scheduler_config.json"), R"({"_class_name": "FlowMatchEulerDiscreteScheduler"})");
  const PipelineFolder q = PipelineFolder::open(dir.path().string());
  EXPECT_EQ(q.diffusers_version(), "");
  ASSERT_EQ(q.components().size(), 2u);
  EXPECT_EQ(q.components()[0].name, "vae");  // file order, not sorted
  EXPECT_FALSE(q.components()[0].exists);
  EXPECT_TRUE(q.components()[1].exists);
  msg = error_of([&] { q.open_component("vae"); });
  EXPECT_TRUE(contains(msg, bracketed(dir.file("model_index.json")) + " component 'vae' (diffusers AutoencoderKL) has no folder"))
      << msg;
  EXPECT_EQ(q.open_component("scheduler").class_name(), "FlowMatchEulerDiscreteScheduler");
}

TEST(PipelineFolder, MalformedModelIndex) {
  struct Case {
    const char* label;
    std::string text;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"not_json", "{\"_class_name\": \"P\",\n\"vae\": [\"diffusers\" \"AutoencoderKL\"]}",
       "malformed JSON: parse error at line 2"},
      {"array", R"([["diffusers", "AutoencoderKL"]])", "expected a JSON object at the top level, found an array"},
      {"no_class", R"({"vae": ["diffusers", "AutoencoderKL"]})", "missing key '_class_name'"},
      {"class_not_string", R"({"_class_name": ["P"]})", "key '_class_name': expected a string, found an array"},
      {"three_names", R"({"_class_name": "P", "vae": ["diffusers", "AutoencoderKL", "x"]})",
       "component 'vae' must be [library, class]"},
      {"one_name", R"({"_class_name": "P", "vae": ["diffusers"]})", "component 'vae' must be [library, class]"},
      {"class_number", R"({"_class_name": "P", "vae": ["diffusers", 5]})",
       "component 'vae': the class name must be a string or null, found 5"},
      {"half_null", R"({"_class_name": "P", "vae": [null, "AutoencoderKL"]})",
       "component 'vae' must have both library and class, or neither"},
      {"empty_class", R"({"_class_name": "P", "vae": ["diffusers", ""]})", "component 'vae' has an empty class name"},
      {"version_number", R"({"_class_name": "P", "_diffusers_version": 30})",
       "key '_diffusers_version': expected a string"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    TempDir dir;
    testing::write_bytes(dir.file("model_index.json"), c.text);
    const std::string msg = error_of([&] { PipelineFolder::open(dir.path().string()); });
    EXPECT_TRUE(contains(msg, bracketed(dir.file("model_index.json")))) << msg;
    EXPECT_TRUE(contains(msg, c.expect)) << "missing '" << c.expect << "' in: " << msg;
  }
  TempDir none;
  const std::string msg = error_of([&] { PipelineFolder::open(none.path().string()); });
  EXPECT_TRUE(contains(msg, "not a pipeline folder: model_index.json not found")) << msg;
}

TEST(PipelineFolder, OptionsAreNotComponents) {
  TempDir dir;
  testing::write_bytes(dir.file("model_index.json"),
                       R"({"_class_name": "StableDiffusionXLPipeline", "_name_or_path": "x/y",
                           "force_zeros_for_empty_prompt": true, "sizes": [512, 768], "feature_extractor": [null, null],
                           "unet": ["diffusers", "UNet2DConditionModel"]})");
  const PipelineFolder p = PipelineFolder::open(dir.path().string());
  ASSERT_EQ(p.components().size(), 2u);
  EXPECT_EQ(p.components()[0].name, "feature_extractor");
  EXPECT_TRUE(p.components()[0].is_null());
  EXPECT_EQ(p.components()[1].name, "unet");
  EXPECT_TRUE(p.model_index().get<bool>("force_zeros_for_empty_prompt"));
}

// Builds models--org--tiny with blobs/, refs/main and snapshots/<hash>/ whose files are
// relative symlinks into ../../blobs (../../../blobs for files in component folders).
TEST(ResolveModelPath, HubCacheSnapshots) {
  TempDir dir;
  const fs::path repo = dir.path() / "models--org--tiny";
  const std::string hash = "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / hash / "transformer");
  testing::write_bytes((repo / "refs" / "main").string(), hash);  // no trailing newline, as the hub writes
  testing::write_bytes((repo / "blobs" / "aaa1").string(),
                       R"({"_class_name": "TinyPipeline", "transformer": ["diffusers", "SD3Transformer2DModel"]})");
  testing::write_bytes((repo / "blobs" / "aaa2").string(), R"({"_class_name": "SD3Transformer2DModel", "num_layers": 1})");
  small_weights((repo / "blobs" / "aaa3").string(), 42.f);
  const fs::path snap = repo / "snapshots" / hash;
  fs::create_symlink("../../blobs/aaa1", snap / "model_index.json");
  fs::create_symlink("../../../blobs/aaa2", snap / "transformer" / "config.json");
  fs::create_symlink("../../../blobs/aaa3", snap / "transformer" / "diffusion_pytorch_model.safetensors");

  EXPECT_EQ(resolve_model_path(repo.string()), snap.string());
  EXPECT_EQ(resolve_model_path(snap.string()), snap.string());
  const PipelineFolder p = PipelineFolder::open(resolve_model_path(repo.string()));
  EXPECT_EQ(p.class_name(), "TinyPipeline");
  const ModelFolder t = p.open_component("transformer");
  EXPECT_EQ(t.config().get<int>("num_layers"), 1);
  EXPECT_EQ(t.files(), (std::vector<std::string>{"config.json", "diffusion_pytorch_model.safetensors"}));
  EXPECT_EQ(t.weights()->tensor("w").to_vector(), (std::vector<float>{42.f, 43.f}));

  // A newline after the hash is tolerated; a hash without its snapshot is an error.
  testing::write_bytes((repo / "refs" / "main").string(), hash + "\n");
  EXPECT_EQ(resolve_model_path(repo.string()), snap.string());
  testing::write_bytes((repo / "refs" / "main").string(), "ffff");
  auto msg = error_of([&] { resolve_model_path(repo.string()); });
  EXPECT_TRUE(contains(msg, "refs/main] names snapshot ffff but")) << msg;
  EXPECT_TRUE(contains(msg, "does not exist")) << msg;
  // Without refs/main, a single snapshot is used; two are ambiguous.
  fs::remove(repo / "refs" / "main");
  EXPECT_EQ(resolve_model_path(repo.string()), snap.string());
  fs::create_directories(repo / "snapshots" / "other");
  msg = error_of([&] { resolve_model_path(repo.string()); });
  EXPECT_TRUE(contains(msg, "without refs/main has 2 snapshots")) << msg;
}

TEST(ResolveModelPath, CaseFoldersAndPlainPaths) {
  EXPECT_EQ(resolve_model_path(kGolden + "/pipeline_flux_dev"), kGolden + "/pipeline_flux_dev/pipeline");
  EXPECT_EQ(resolve_model_path(kGolden + "/transformer_auraflow"), kGolden + "/transformer_auraflow/transformer");
  EXPECT_EQ(resolve_model_path(kGolden + "/text_encoder_umt5"), kGolden + "/text_encoder_umt5/text_encoder");
  EXPECT_EQ(resolve_model_path(kGolden + "/vae_decode_16ch"), kGolden + "/vae_decode_16ch/vae");
  EXPECT_EQ(resolve_model_path(kGolden + "/scheduler_flowmatch_sd3"), kGolden + "/scheduler_flowmatch_sd3/scheduler");
  EXPECT_EQ(resolve_model_path(kGolden + "/tokenizer_clip"), kGolden + "/tokenizer_clip/tokenizer");
  const std::string plain = kGolden + "/vae_decode_16ch/vae";
  EXPECT_EQ(resolve_model_path(plain), plain);
  auto msg = error_of([&] { resolve_model_path(kGolden + "/no_such_case"); });
  EXPECT_TRUE(contains(msg, "no_such_case] model path not found")) << msg;
}

// Every case folder in tests/golden resolves and opens, with every component and weight file.
TEST(ResolveModelPath, EveryGoldenCaseOpens) {
  int pipelines = 0, models = 0;
  for (const auto& e : fs::directory_iterator(kGolden)) {
    if (!e.is_directory()) continue;
    SCOPED_TRACE(e.path().string());
    const std::string r = resolve_model_path(e.path().string());
    EXPECT_NE(r, e.path().string());
    if (is_pipeline_folder(r)) {
      const PipelineFolder p = PipelineFolder::open(r);
      ++pipelines;
      for (const auto& c : p.components()) {
        if (c.is_null()) continue;
        const ModelFolder m = p.open_component(c.name);
        if (m.has_weights()) {
          EXPECT_GT(m.weights()->total_bytes(), 0u) << c.name;
        }
      }
    } else {
      const ModelFolder m = ModelFolder::open(r);
      EXPECT_FALSE(m.class_name().empty());
      ++models;
    }
  }
  EXPECT_EQ(pipelines, 10);
  EXPECT_EQ(models, 18);
}

}  // namespace
}  // namespace qdit::io
