// SafetensorsWeights over single files and sharded sets (index.json + shards written here),
// including every consistency check on the index.
#include "qdit/io/weight_source.h"

#include "test_util.h"

namespace qdit::io {
namespace {

using testing::TempDir;
using testing::error_of;

bool contains(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

Tensor ramp(int64_t n, float start) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return Tensor::from_vector(v, {n});
}

// Two shards: a, b in shard 1; c (bf16) in shard 2.
void write_shards(const TempDir& dir) {
  save_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"a", ramp(3, 0.f)}, {"b", ramp(2, 10.f)}});
  save_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"c", ramp(4, 20.f).to(DType::BF16)}});
}

void write_index(const TempDir& dir, const std::string& weight_map) {
  testing::write_bytes(dir.file("model.safetensors.index.json"),
                       R"({"metadata": {"total_size": 28}, "weight_map": )" + weight_map + "}");
}

const char* kGoodMap = R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                           "c": "model-00002-of-00002.safetensors"})";

TEST(WeightSource, ShardedLoading) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, kGoodMap);
  auto w = SafetensorsWeights::open(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(w->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(w->files().size(), 2u);
  EXPECT_EQ(w->total_bytes(), 3 * 4 + 2 * 4 + 4 * 2u);
  EXPECT_TRUE(contains(w->describe(), "2 shards, 3 tensors")) << w->describe();
  EXPECT_EQ(w->tensor("b").to_vector(), (std::vector<float>{10.f, 11.f}));
  EXPECT_EQ(w->tensor("c").dtype(), DType::BF16);
  EXPECT_EQ(w->tensor("c").to_vector(), (std::vector<float>{20.f, 21.f, 22.f, 23.f}));
  EXPECT_EQ(w->find("c")->shape, (Shape{4}));
  EXPECT_EQ(w->file_of("c").path(), dir.file("model-00002-of-00002.safetensors"));
  EXPECT_TRUE(w->contains("a"));
  EXPECT_FALSE(w->contains("d"));
  const WeightSource& base = *w;  // usable through the interface
  EXPECT_EQ(base.tensor("a").to_vector(), (std::vector<float>{0.f, 1.f, 2.f}));
}

TEST(WeightSource, MissingTensorSuggestsNearest) {
  TempDir dir;
  save_safetensors(dir.file("m.safetensors"),
                   {{"blocks.0.attn.to_out.0.weight", ramp(2, 0)}, {"blocks.0.attn.to_q.weight", ramp(2, 0)}});
  auto w = SafetensorsWeights::open(dir.file("m.safetensors"));
  EXPECT_TRUE(contains(w->describe(), "m.safetensors (2 tensors)"));
  auto msg = error_of([&] { w->tensor("blocks.0.attn.to_out.weight"); });
  EXPECT_TRUE(contains(msg, "no tensor named 'blocks.0.attn.to_out.weight' (nearest: 'blocks.0.attn.to_out.0.weight')"))
      << msg;
  msg = error_of([&] { w->tensor("zzz"); });
  EXPECT_TRUE(contains(msg, "m.safetensors (2 tensors)] no tensor named 'zzz'")) << msg;
  EXPECT_FALSE(contains(msg, "nearest")) << msg;
}

TEST(WeightSource, IndexErrors) {
  struct Case {
    const char* label;
    std::string weight_map;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"missing_shard",
       R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
           "c": "model-00003-of-00002.safetensors"})",
       {"shard 'model-00003-of-00002.safetensors' does not exist"}},
      {"wrong_shard",
       R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
           "c": "model-00001-of-00002.safetensors"})",
       {"tensor 'c' is mapped to shard 'model-00001-of-00002.safetensors' but that shard does not contain it"}},
      {"unlisted",
       R"({"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"})",
       {"holds tensor 'b', which weight_map does not list"}},
      {"absent_tensor",
       R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
           "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"})",
       {"tensor 'd' is mapped to shard 'model-00002-of-00002.safetensors' but that shard does not contain it"}},
      {"not_string", R"({"a": 1})", {"weight_map entry 'a': expected a shard file name, found an integer 1"}},
      {"escape", R"({"a": "../model-00001-of-00002.safetensors"})", {"tensor 'a' maps to shard", "not a file name"}},
      {"not_object", R"(["a"])", {"key 'weight_map': expected an object, found an array"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    TempDir dir;
    write_shards(dir);
    write_index(dir, c.weight_map);
    const std::string idx = dir.file("model.safetensors.index.json");
    const std::string msg = error_of([&] { SafetensorsWeights::open_index(idx); });
    EXPECT_TRUE(contains(msg, "[" + idx + "]")) << msg;
    for (const auto& e : c.expect) EXPECT_TRUE(contains(msg, e)) << "missing '" << e << "' in: " << msg;
  }
}

TEST(WeightSource, TensorInTwoShards) {
  TempDir dir;
  save_safetensors(dir.file("s1.safetensors"), {{"a", ramp(1, 0)}, {"x", ramp(1, 0)}});
  save_safetensors(dir.file("s2.safetensors"), {{"x", ramp(1, 5)}});
  testing::write_bytes(dir.file("i.safetensors.index.json"),
                       R"({"weight_map": {"a": "s1.safetensors", "x": "s2.safetensors"}})");
  const std::string idx = dir.file("i.safetensors.index.json");
  const std::string msg = error_of([&] { SafetensorsWeights::open_index(idx); });
  EXPECT_TRUE(contains(msg, "[" + idx + "] tensor 'x' appears in two shards: 's1.safetensors' and 's2.safetensors'"))
      << msg;

  // The same conflict between plain files.
  const std::string msg2 = error_of([&] {
    SafetensorsWeights::from_files({SafetensorsFile::open(dir.file("s1.safetensors")),
                                    SafetensorsFile::open(dir.file("s2.safetensors"))},
                                   "two files");
  });
  EXPECT_TRUE(contains(msg2, "[two files] tensor 'x' is in both")) << msg2;
}

TEST(WeightSource, IndexWithoutWeightMapAndMalformedIndex) {
  TempDir dir;
  testing::write_bytes(dir.file("a.safetensors.index.json"), R"({"metadata": {}})");
  auto msg = error_of([&] { SafetensorsWeights::open(dir.file("a.safetensors.index.json")); });
  EXPECT_TRUE(contains(msg, "a.safetensors.index.json] missing key 'weight_map'")) << msg;
  testing::write_bytes(dir.file("b.safetensors.index.json"), R"({"weight_map": {"a": "x.safetensors",}})");
  msg = error_of([&] { SafetensorsWeights::open(dir.file("b.safetensors.index.json")); });
  EXPECT_TRUE(contains(msg, "b.safetensors.index.json] malformed JSON: parse error at line 1")) << msg;
}

}  // namespace
}  // namespace qdit::io
