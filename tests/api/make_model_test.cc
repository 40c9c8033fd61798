// `qdit make-model --tiny` end to end for every architecture: the folder loads as a pipeline, every
// component binds with no missing / unused / mis-shaped tensor, tokenizers load with the planned
// vocabularies, and a 2-step generation gives finite latents and a non-constant image. Also:
// determinism (bytes depend on the seed only, not on threads), sharding, the value statistics, and
// clear errors for bad arguments.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "qdit/api/make_model.h"
#include "qdit/api/make_model_tokenizers.h"
#include "qdit/core/parallel.h"
#include "qdit/io/diffusers_folder.h"
#include "qdit/models/registry.h"
#include "qdit/pipelines/pipeline.h"
#include "qdit/tokenizers/clip_tokenizer.h"
#include "qdit/tokenizers/t5_tokenizer.h"
#include "qdit/tokenizers/tokenizer.h"

namespace qdit::api {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qdit_make_model_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Every regular file under `dir`, relative path -> bytes.
std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = slurp(e.path());
  return out;
}

// Records which tensors a model actually binds (the binder reads a tensor only once it matched).
class RecordingWeights final : public io::WeightSource {
 public:
  explicit RecordingWeights(std::shared_ptr<const io::SafetensorsWeights> w) : w_(std::move(w)) {}
  std::vector<std::string> names() const override { return w_->names(); }
  const io::TensorRecord* find(const std::string& n) const override { return w_->find(n); }
  Tensor tensor(const std::string& n) const override {
    bound.insert(n);
    return w_->tensor(n);
  }
  size_t total_bytes() const override { return w_->total_bytes(); }
  std::string describe() const override { return w_->describe(); }
  mutable std::set<std::string> bound;

 private:
  std::shared_ptr<const io::SafetensorsWeights> w_;
};

// Binds a component through the model registry and returns the names it did not use.
std::vector<std::string> unused_after_binding(const io::PipelineFolder& p, const std::string& name) {
  const io::ModelFolder f = p.open_component(name);
  auto rec = std::make_shared<RecordingWeights>(f.weights());
  models::ModelSource src{name, &f.config(), rec, {}};
  models::create_model(f.class_name(), src);  // throws on missing / wrong-shape tensors
  std::vector<std::string> unused;
  for (const auto& n : rec->names())
    if (!rec->bound.count(n)) unused.push_back(n);
  return unused;
}

bool all_finite(const Tensor& t) {
  for (float v : t.to(DType::F32).to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

class TinyArch : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyArch, LoadsBindsEveryTensorTokenizesAndGenerates) {
  TempDir tmp;
  MakeModelOptions opt;
  opt.arch = GetParam();
  opt.out = tmp.sub("pipe");
  opt.tiny = true;
  opt.dtype = DType::F32;
  opt.seed = 11;
  const MakeModelReport report = make_model(opt);
  const PipelineSpec plan = plan_pipeline(opt.arch, true, opt.dtype);
  ASSERT_EQ(report.components.size(), plan.components.size());

  const io::PipelineFolder p = io::PipelineFolder::open(opt.out);
  EXPECT_EQ(p.class_name(), plan.model_index.at("_class_name").get<std::string>());
  uint64_t total_bytes = 0;
  for (const ComponentSpec& c : plan.components) {
    SCOPED_TRACE(c.name);
    ASSERT_NE(p.find_component(c.name), nullptr);
    EXPECT_EQ(p.find_component(c.name)->class_name, c.class_name);
    if (!c.weights.empty()) {
      const std::vector<std::string> unused = unused_after_binding(p, c.name);
      if (c.class_name == "AutoencoderKL") {
        // qdit decodes only: the encoder half (real checkpoints carry it) is the only thing left.
        for (const auto& n : unused)
          EXPECT_TRUE(n.rfind("encoder.", 0) == 0 || n.rfind("quant_conv.", 0) == 0) << n;
        EXPECT_FALSE(unused.empty());
      } else {
        EXPECT_TRUE(unused.empty()) << unused.size() << " unused, first " << unused.front();
      }
      const io::ModelFolder f = p.open_component(c.name);
      EXPECT_EQ(f.weights()->names().size(), c.weights.size());
      EXPECT_EQ(f.weights()->total_bytes(), c.weight_bytes(DType::F32));
    }
    if (c.has_tokenizer) {
      auto tok = tokenizers::load_tokenizer(p.find_component(c.name)->dir);
      const bool t5 = c.tokenizer.kind == TokenizerSpec::Kind::T5;
      EXPECT_EQ(tok->vocab_size(), c.tokenizer.pieces + (t5 ? 100 : 0));
      // The encoder that reads these ids: tokenizer_N feeds text_encoder_N.
      const ComponentSpec* enc = plan.find("text_encoder" + c.name.substr(std::string("tokenizer").size()));
      ASSERT_NE(enc, nullptr);
      const int64_t rows = enc->config.at("vocab_size").get<int64_t>();
      EXPECT_LE(tok->vocab_size(), rows);
      const std::vector<int64_t> ids = tok->encode_one("A red fox, jumping over 3 lazy dogs!", 0, false);
      ASSERT_GE(ids.size(), 8u);
      for (int64_t id : ids) EXPECT_TRUE(id >= 0 && id < rows) << id;
      if (t5) {
        EXPECT_EQ(ids.back(), 1);  // </s>
      } else {
        EXPECT_EQ(ids.front(), c.tokenizer.pieces - 2);  // <|startoftext|>
        EXPECT_EQ(ids.back(), c.tokenizer.pieces - 1);   // <|endoftext|>: also the largest id (argmax pooling)
        EXPECT_EQ(tok->pad_id(), c.tokenizer.pad_token == "!" ? 0 : c.tokenizer.pieces - 1);
      }
    }
  }
  for (const auto& r : report.components) total_bytes += r.bytes;
  EXPECT_LT(total_bytes, 8u << 20) << "tiny pipelines stay a few MB";

  auto pipe = pipelines::load_pipeline(opt.out);
  pipelines::GenerateRequest req;
  req.prompt = "a red fox in the snow";
  req.negative_prompt = "blurry";
  req.steps = 2;
  req.width = req.height = 64;
  req.seed = 3;
  const pipelines::GenerateResult r = pipe->generate(req);
  ASSERT_TRUE(r.latents.defined() && r.image.defined());
  EXPECT_TRUE(all_finite(r.latents));
  EXPECT_TRUE(all_finite(r.image));
  EXPECT_EQ(r.image.shape(), (Shape{1, 3, 64, 64}));
  const std::vector<float> px = r.image.to_vector();
  const auto [lo, hi] = std::minmax_element(px.begin(), px.end());
  EXPECT_GT(*hi - *lo, 0.05f) << "a constant image would hide a dead pipeline";
}

INSTANTIATE_TEST_SUITE_P(All, TinyArch, ::testing::ValuesIn(make_model_archs()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(MakeModel, Bf16WeightsWithPersistentBufferGenerateFinite) {
  TempDir tmp;
  MakeModelOptions opt{"sd3-medium", tmp.sub("sd3"), DType::BF16, 5, true};
  make_model(opt);
  const io::ModelFolder t = io::ModelFolder::open(tmp.sub("sd3/transformer"));
  const io::TensorRecord* table = t.weights()->find("pos_embed.pos_embed");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->dtype, DType::BF16);
  EXPECT_EQ(table->shape, (Shape{1, 16 * 16, 32}));
  // The buffer holds diffusers' sin-cos table, not random values: row 0 is sin(0)=0 / cos(0)=1 pairs.
  const std::vector<float> row0 = t.weights()->tensor("pos_embed.pos_embed").to(DType::F32).to_vector();
  EXPECT_EQ(row0[0], 0.0f);
  EXPECT_EQ(row0[8], 1.0f);
  pipelines::GenerateRequest req;
  req.prompt = "a lighthouse";
  req.steps = 2;
  req.width = req.height = 64;
  const auto r = pipelines::load_pipeline(opt.out)->generate(req);
  EXPECT_TRUE(all_finite(r.latents));
  EXPECT_TRUE(all_finite(r.image));
}

TEST(MakeModel, SameSeedSameBytesAnyThreadCountOtherSeedOtherWeights) {
  TempDir tmp;
  const int threads = num_threads();
  MakeModelOptions a{"pixart-sigma", tmp.sub("a"), DType::BF16, 7, true};
  make_model(a);
  set_num_threads(1);
  MakeModelOptions b = a;
  b.out = tmp.sub("b");
  make_model(b);
  set_num_threads(threads);
  MakeModelOptions c = a;
  c.out = tmp.sub("c");
  c.seed = 8;
  make_model(c);

  const auto ta = tree(a.out), tb = tree(b.out), tc = tree(c.out);
  EXPECT_EQ(ta, tb);
  ASSERT_EQ(ta.size(), tc.size());
  for (const auto& [file, bytes] : ta) {
    const bool weights = file.find(".safetensors") != std::string::npos;
    // Configs and tokenizers do not depend on the seed; weights do.
    EXPECT_EQ(bytes == tc.at(file), !weights) << file;
  }
}

TEST(MakeModel, NormalValuesHaveThePlannedStdAndDifferPerTensor) {
  WeightSpec w{"x.weight", {1 << 20}, WeightInit::Normal, 0.5f};
  std::vector<float> v(1 << 20), u(1 << 20);
  fill_weight(w, weight_stream_key(3, "transformer", "x.weight"), 0, w.numel(), v.data());
  fill_weight(w, weight_stream_key(3, "transformer", "y.weight"), 0, w.numel(), u.data());
  double sum = 0, sq = 0, cross = 0;
  float peak = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    sum += v[i];
    sq += double(v[i]) * v[i];
    cross += double(v[i]) * u[i];
    peak = std::max(peak, std::abs(v[i]));
  }
  const double n = static_cast<double>(v.size()), mean = sum / n, std = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(std, 0.5, 0.005);
  EXPECT_LE(peak, 0.5f * 1.7321f * 2.0f);  // Irwin-Hall support: +-2*sqrt(3) std
  EXPECT_GT(peak, 0.5f * 3.0f);
  EXPECT_NEAR(cross / n, 0.0, 0.002);  // another name is another, uncorrelated stream
  // Any sub-range gives the same values as the whole (what makes chunks and threads irrelevant).
  std::vector<float> part(1000);
  fill_weight(w, weight_stream_key(3, "transformer", "x.weight"), 5000, 6000, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), v.begin() + 5000));
}

TEST(MakeModel, ShardedComponentsWriteAnIndexAndStillBind) {
  TempDir tmp;
  MakeModelOptions opt{"flux-dev", tmp.sub("flux"), DType::F32, 1, true};
  opt.max_shard_bytes = 200'000;
  make_model(opt);
  for (const char* comp : {"transformer", "text_encoder_2", "vae"}) {
    SCOPED_TRACE(comp);
    const io::ModelFolder f = io::ModelFolder::open(tmp.sub(std::string("flux/") + comp));
    EXPECT_NE(f.weights_file().find(".safetensors.index.json"), std::string::npos) << f.weights_file();
    EXPECT_GT(f.weights()->files().size(), 1u);
  }
  // The first shard of three is named like save_pretrained's.
  EXPECT_TRUE(fs::exists(tmp.sub("flux/text_encoder_2/model-00001-of-00003.safetensors")));
  const io::PipelineFolder p = io::PipelineFolder::open(opt.out);
  EXPECT_TRUE(unused_after_binding(p, "transformer").empty());
  EXPECT_TRUE(unused_after_binding(p, "text_encoder_2").empty());
  pipelines::GenerateRequest req;
  req.prompt = "x";
  req.steps = 1;
  req.width = req.height = 64;
  EXPECT_TRUE(all_finite(pipelines::load_pipeline(opt.out)->generate(req).image));
}

// The real-size tokenizers (written in milliseconds) load with the real vocabulary sizes and ids.
TEST(MakeModel, RealSizeTokenizersHaveTheRealVocabularies) {
  TempDir tmp;
  const PipelineSpec sd3 = plan_pipeline("sd3-medium", false, DType::BF16);
  for (const char* name : {"tokenizer", "tokenizer_2", "tokenizer_3"}) {
    fs::create_directories(tmp.sub(name));
    write_tokenizer_folder(tmp.sub(name), sd3.find(name)->tokenizer);
  }
  const std::string prompt = "A photo of an astronaut riding a horse on Mars, 4k";
  auto t5 = tokenizers::T5Tokenizer::load(tmp.sub("tokenizer_3"));
  EXPECT_EQ(t5->sp_piece_count(), 32000);
  EXPECT_EQ(t5->vocab_size(), 32100);  // + <extra_id_0..99>; T5-XXL's 32128 rows leave 28 unused
  EXPECT_EQ(t5->token_to_id("<extra_id_0>"), 32099);
  EXPECT_EQ(t5->eos_id(), 1);
  EXPECT_EQ(t5->pad_id(), 0);
  const std::vector<std::string> pieces = t5->tokenize(prompt);
  EXPECT_EQ(pieces.front(), "\xE2\x96\x81" "A");  // "▁A": ASCII characters, with and without the mark
  EXPECT_LT(pieces.size(), prompt.size() / 2);
  for (const auto& p : pieces) EXPECT_NE(t5->token_to_id(p), t5->unk_id()) << p;
  auto clip_l = tokenizers::ClipTokenizer::load(tmp.sub("tokenizer"));
  auto clip_g = tokenizers::ClipTokenizer::load(tmp.sub("tokenizer_2"));
  for (const auto* clip : {clip_l.get(), clip_g.get()}) {
    EXPECT_EQ(clip->vocab_size(), 49408);
    EXPECT_EQ(clip->bos_id(), 49406);
    EXPECT_EQ(clip->eos_id(), 49407);
    const std::vector<int64_t> ids = clip->encode_one(prompt, 77, true);
    EXPECT_LT(ids.size(), 30u);
    EXPECT_EQ(ids.back(), 49407);
    for (size_t i = 1; i + 1 < ids.size(); ++i) EXPECT_LT(ids[i], 49406);  // no unknown (= <|endoftext|>)
  }
  EXPECT_EQ(clip_l->pad_id(), 49407);
  EXPECT_EQ(clip_g->pad_id(), 0);  // "!"
}

TEST(MakeModel, BadArgumentsAreClearErrors) {
  TempDir tmp;
  EXPECT_NE(error_of([&] { plan_pipeline("sdxl", false, DType::BF16); })
                .find("unknown --arch 'sdxl' (known: pixart-sigma, sd3-medium, flux-dev, flux-schnell, auraflow)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { plan_pipeline("flux-dev", false, DType::F16); }).find("must be bf16 or f32, found f16"),
            std::string::npos);

  MakeModelOptions opt{"auraflow", tmp.sub("file"), DType::F32, 0, true};
  std::ofstream(opt.out) << "x";
  EXPECT_NE(error_of([&] { make_model(opt); }).find("exists and is not a folder"), std::string::npos);
  opt.out = tmp.sub("file/below");
  EXPECT_NE(error_of([&] { make_model(opt); }).find("cannot create --out " + opt.out), std::string::npos);
  opt.out = "/proc/qdit-make-model";
  EXPECT_NE(error_of([&] { make_model(opt); }).find("cannot create --out /proc/qdit-make-model"), std::string::npos);

  // An existing pipeline is only replaced with overwrite, and then it loads again.
  opt.out = tmp.sub("pipe");
  make_model(opt);
  EXPECT_NE(error_of([&] { make_model(opt); }).find("is not empty; pass --force"), std::string::npos);
  opt.overwrite = true;
  opt.arch = "pixart-sigma";
  make_model(opt);
  EXPECT_EQ(io::PipelineFolder::open(opt.out).class_name(), "PixArtSigmaPipeline");
}

}  // namespace
}  // namespace qdit::api
