// Safetensors writer -> reader round trips (every dtype, exact bytes), layout details the
// Python library relies on, and reading a real golden file checked against its config.json.
#include "qdit/io/safetensors.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "qdit/core/float_cast.h"
#include "test_util.h"

namespace qdit::io {
namespace {

using testing::TempDir;
using testing::error_of;

// A tensor of `dtype` and `shape` filled with a distinct, deterministic byte pattern.
Tensor patterned(DType dtype, const Shape& shape, uint32_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = t.data<uint8_t>();
  uint32_t x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < t.nbytes(); ++i) {
    x = x * 1664525u + 1013904223u;
    p[i] = static_cast<uint8_t>(x >> 24);
  }
  if (dtype == DType::Bool)
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  return t;
}

TEST(Safetensors, RoundTripEveryDtypeExactBytes) {
  TempDir dir;
  const std::vector<DType> all = {DType::F32, DType::F16, DType::BF16, DType::F8E4M3, DType::F8E5M2,
                                  DType::I8,  DType::U8,  DType::I32,  DType::I64,    DType::Bool};
  std::vector<std::pair<std::string, Tensor>> ts;
  for (size_t i = 0; i < all.size(); ++i) {
    Shape shape = {static_cast<int64_t>(i % 3 + 1), 5, static_cast<int64_t>(i + 2)};
    ts.emplace_back(std::string("t.") + dtype_name(all[i]), patterned(all[i], shape, static_cast<uint32_t>(i)));
  }
  ts.emplace_back("scalar", Tensor::from_vector({-2.5f}, {}));
  ts.emplace_back("empty", Tensor::empty({0, 7}, DType::BF16));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "üñí \"quoted\""}};
  const std::string path = dir.file("all.safetensors");
  save_safetensors(path, ts, meta);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->records().size(), ts.size());
  for (const auto& [name, t] : ts) {
    SCOPED_TRACE(name);
    const TensorRecord* r = f->find(name);
    ASSERT_NE(r, nullptr);
    EXPECT_TRUE(f->contains(name));
    EXPECT_EQ(r->dtype, t.dtype());
    EXPECT_EQ(r->shape, t.shape());
    EXPECT_EQ(r->nbytes(), t.nbytes());
    Tensor back = f->tensor(name);
    EXPECT_EQ(back.dtype(), t.dtype());
    EXPECT_EQ(back.shape(), t.shape());
    ASSERT_EQ(back.nbytes(), t.nbytes());
    if (t.nbytes()) {
      EXPECT_EQ(std::memcmp(back.raw_data(), t.raw_data(), t.nbytes()), 0);
    }
  }
  EXPECT_FALSE(f->contains("missing"));
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_EQ(f->tensor("scalar").item_f32(0), -2.5f);
  EXPECT_NE(error_of([&] { f->tensor("missing"); }).find("no tensor named 'missing'"), std::string::npos);
}

TEST(Safetensors, LayoutMatchesPythonLibrary) {
  TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  // Sizes chosen so the header is not naturally a multiple of 8 and dtypes are mixed.
  save_safetensors(path, {{"b", patterned(DType::U8, {3}, 1)},
                          {"a", patterned(DType::F32, {2}, 2)},
                          {"c", patterned(DType::I64, {1}, 3)},
                          {"d", patterned(DType::BF16, {5}, 4)}});
  const std::string raw = testing::read_text(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(raw[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  const std::string header = raw.substr(8, n);
  const size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  EXPECT_LT(n - last - 1, 8u);  // only alignment padding, spaces
  EXPECT_EQ(raw.size(), 8 + n + 3 + 8 + 8 + 10);

  // Decreasing element size, input order among equals: c (8), a (4), d (2), b (1).
  auto f = SafetensorsFile::open(path);
  std::vector<std::string> order;
  uint64_t cursor = 0;
  for (const auto& r : f->records()) {
    order.push_back(r.name);
    EXPECT_EQ(r.begin, cursor);
    EXPECT_EQ((f->data_offset() + r.begin) % dtype_size(r.dtype), 0u) << r.name;
    cursor = r.end;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"c", "a", "d", "b"}));
  EXPECT_EQ(f->tensor_bytes(), 29u);
  EXPECT_EQ(f->file_size(), raw.size());
  // Views are zero-copy into the mapping.
  const uint8_t* base = f->mapping()->data();
  EXPECT_EQ(f->tensor("a").raw_data(), base + f->data_offset() + f->find("a")->begin);
  EXPECT_FALSE(f->tensor("a").storage()->owned());
}

TEST(Safetensors, NonContiguousInputIsWrittenInLogicalOrder) {
  TempDir dir;
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[i] = static_cast<float>(i) * 1.5f - 4.0f;
  Tensor base = Tensor::from_vector(v, {3, 4});
  Tensor tr = base.transpose(0, 1);             // [4, 3]
  Tensor sl = base.slice(1, 1, 3);              // [3, 2], row stride 4
  Tensor half = base.to(DType::F16).transpose(0, 1);
  ASSERT_FALSE(tr.is_contiguous());
  ASSERT_FALSE(sl.is_contiguous());
  const std::string path = dir.file("nc.safetensors");
  save_safetensors(path, {{"tr", tr}, {"sl", sl}, {"half", half}});
  auto f = SafetensorsFile::open(path);
  Tensor rt = f->tensor("tr");
  ASSERT_EQ(rt.shape(), (Shape{4, 3}));
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(rt.data<float>()[i * 3 + j], v[j * 4 + i]);
  Tensor rs = f->tensor("sl");
  ASSERT_EQ(rs.shape(), (Shape{3, 2}));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) EXPECT_EQ(rs.data<float>()[i * 2 + j], v[i * 4 + 1 + j]);
  Tensor rh = f->tensor("half");
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(f16_to_f32(rh.data<uint16_t>()[i * 3 + j]), v[j * 4 + i]);
}

TEST(Safetensors, ViewsKeepTheMappingAlive) {
  TempDir dir;
  const std::string path = dir.file("alive.safetensors");
  save_safetensors(path, {{"x", Tensor::from_vector({1.f, 2.f, 3.f}, {3})}});
  Tensor t;
  {
    auto f = SafetensorsFile::open(path);
    t = f->tensor("x");
  }
  std::filesystem::remove(path);  // the mapping outlives both the file object and the name
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1.f, 2.f, 3.f}));
}

TEST(Safetensors, EmptyFileListAndOverwriteLeaveNoTemp) {
  TempDir dir;
  const std::string path = dir.file("none.safetensors");
  save_safetensors(path, {});
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(f->records().empty());
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_EQ(f->file_size(), 16u);  // "{}" padded to 8
  save_safetensors(path, {{"y", Tensor::from_vector({7.f}, {1})}}, {{"k", "v"}});
  EXPECT_EQ(SafetensorsFile::open(path)->tensor("y").item_f32(0), 7.f);
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) { (void)e; ++files; }
  EXPECT_EQ(files, 1u);
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  Tensor x = Tensor::from_vector({1.f}, {1});
  EXPECT_NE(error_of([&] { save_safetensors(path, {{"a", x}, {"a", x}}); }).find("tensor 'a' is given twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { save_safetensors(path, {{"__metadata__", x}}); }).find("reserved"), std::string::npos);
  EXPECT_NE(error_of([&] { save_safetensors(path, {{"u", Tensor()}}); }).find("tensor 'u' is undefined"),
            std::string::npos);
  EXPECT_NE(error_of([&] { save_safetensors(dir.file("no/such/dir/x.safetensors"), {{"a", x}}); })
                .find("cannot create temporary file"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path));
}

// The SD3 golden transformer: tensor count and shapes follow from its config.json.
TEST(Safetensors, ReadsGoldenSd3Transformer) {
  const std::string dir = std::string(QDIT_TEST_DATA_DIR) + "/golden/transformer_sd3/transformer";
  const std::string path = dir + "/diffusion_pytorch_model.safetensors";
  auto cfg = nlohmann::json::parse(testing::read_text(dir + "/config.json"));
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const int64_t inner = cfg["num_attention_heads"].get<int64_t>() * cfg["attention_head_dim"].get<int64_t>();
  const int64_t patch = cfg["patch_size"].get<int64_t>(), in_ch = cfg["in_channels"].get<int64_t>();
  const int64_t out_ch = cfg["out_channels"].get<int64_t>(), pmax = cfg["pos_embed_max_size"].get<int64_t>();
  EXPECT_EQ(f->records().size(), 67u);
  auto shape = [&](const std::string& n) {
    const TensorRecord* r = f->find(n);
    EXPECT_NE(r, nullptr) << n;
    return r ? r->shape : Shape{};
  };
  EXPECT_EQ(shape("pos_embed.proj.weight"), (Shape{inner, in_ch, patch, patch}));
  EXPECT_EQ(shape("pos_embed.pos_embed"), (Shape{1, pmax * pmax, inner}));
  EXPECT_EQ(shape("context_embedder.weight"), (Shape{cfg["caption_projection_dim"].get<int64_t>(), cfg["joint_attention_dim"].get<int64_t>()}));
  EXPECT_EQ(shape("time_text_embed.text_embedder.linear_1.weight"), (Shape{inner, cfg["pooled_projection_dim"].get<int64_t>()}));
  EXPECT_EQ(shape("proj_out.weight"), (Shape{patch * patch * out_ch, inner}));
  EXPECT_EQ(shape("transformer_blocks.0.norm1.linear.weight"), (Shape{6 * inner, inner}));
  std::set<std::string> blocks;
  for (const auto& r : f->records()) {
    EXPECT_EQ(r.dtype, DType::F32) << r.name;
    if (r.name.rfind("transformer_blocks.", 0) == 0) blocks.insert(r.name.substr(0, r.name.find('.', 19)));
  }
  EXPECT_EQ(static_cast<int64_t>(blocks.size()), cfg["num_layers"].get<int64_t>());
  // The last block is context_pre_only: no context feed-forward.
  EXPECT_FALSE(f->contains("transformer_blocks.1.ff_context.net.2.weight"));
  EXPECT_TRUE(f->contains("transformer_blocks.0.ff_context.net.2.weight"));

  // The view holds the very bytes at the recorded offset (checked through a plain file read).
  const std::string raw = testing::read_text(path);
  const TensorRecord* r = f->find("proj_out.bias");
  Tensor t = f->tensor("proj_out.bias");
  ASSERT_EQ(t.numel(), patch * patch * out_ch);
  EXPECT_EQ(std::memcmp(t.raw_data(), raw.data() + f->data_offset() + r->begin, t.nbytes()), 0);
  EXPECT_EQ(f->data_offset() + f->tensor_bytes(), raw.size());
}

}  // namespace
}  // namespace qdit::io
