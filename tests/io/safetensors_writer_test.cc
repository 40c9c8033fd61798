// Streaming SafetensorsWriter: pieces of any size give the same bytes as save_safetensors, the
// reader accepts the result, and misuse (wrong order, overrun, incomplete finish) fails cleanly
// without leaving a file behind.
#include "qdit/io/safetensors_writer.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "qdit/io/safetensors.h"
#include "test_util.h"

namespace qdit::io {
namespace {

using testing::TempDir;
using testing::error_of;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

Tensor ramp(DType dtype, const Shape& shape, float start) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return Tensor::from_vector(v, shape).to(dtype);
}

size_t files_in(const std::filesystem::path& dir) {
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++n;
  return n;
}

TEST(SafetensorsWriter, PiecewiseWritesMatchSaveSafetensorsByteForByte) {
  TempDir dir;
  const Tensor a = ramp(DType::BF16, {3, 5}, 1.f), b = ramp(DType::F32, {7}, -3.f), e = ramp(DType::F32, {0, 4}, 0.f);
  const Tensor c = ramp(DType::BF16, {2, 2, 2}, 100.f);
  save_safetensors(dir.file("ref.safetensors"), {{"a", a}, {"b", b}, {"empty", e}, {"c", c}}, {{"format", "pt"}});

  SafetensorsWriter w(dir.file("stream.safetensors"),
                      {{"a", DType::BF16, {3, 5}}, {"b", DType::F32, {7}}, {"empty", DType::F32, {0, 4}},
                       {"c", DType::BF16, {2, 2, 2}}},
                      {{"format", "pt"}});
  // F32 first (larger elements), declaration order among equals; the empty tensor needs no bytes.
  ASSERT_EQ(w.order().size(), 4u);
  EXPECT_EQ(w.order()[0].name, "b");
  EXPECT_EQ(w.order()[1].name, "empty");
  EXPECT_EQ(w.order()[2].name, "a");
  EXPECT_EQ(w.order()[3].name, "c");
  EXPECT_EQ(w.data_bytes(), 7u * 4 + 15 * 2 + 8 * 2);
  EXPECT_EQ(w.current()->name, "b");
  w.write("b", b.raw_data(), 12);  // three pieces of uneven size
  w.write("b", static_cast<const uint8_t*>(b.raw_data()) + 12, 1);
  w.write("b", static_cast<const uint8_t*>(b.raw_data()) + 13, 15);
  EXPECT_EQ(w.current()->name, "a");  // "empty" was skipped
  for (int64_t i = 0; i < 15; ++i) w.write("a", static_cast<const uint8_t*>(a.raw_data()) + 2 * i, 2);
  w.write("c", c.raw_data(), c.nbytes());
  EXPECT_EQ(w.current(), nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir.file("stream.safetensors")));  // only the temp exists until finish
  w.finish();

  EXPECT_EQ(slurp(dir.file("stream.safetensors")), slurp(dir.file("ref.safetensors")));
  auto f = SafetensorsFile::open(dir.file("stream.safetensors"));
  EXPECT_EQ(f->data_offset(), w.header_bytes());
  EXPECT_EQ(f->tensor("a").to_vector(), a.to_vector());
  EXPECT_EQ(f->tensor("c").to_vector(), c.to_vector());
  EXPECT_EQ(f->tensor("b").to_vector(), b.to_vector());
  EXPECT_EQ(files_in(dir.path()), 2u);
}

TEST(SafetensorsWriter, MisuseIsAnErrorAndLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  const float data[4] = {1, 2, 3, 4};
  {
    SafetensorsWriter w(path, {{"x", DType::F32, {2}}, {"y", DType::F32, {2}}});
    EXPECT_NE(error_of([&] { w.write("y", data, 8); }).find("write of 'y' while 'x' is incomplete"),
              std::string::npos);
    EXPECT_NE(error_of([&] { w.write("x", data, 12); }).find("would pass its end"), std::string::npos);
    w.write("x", data, 8);
    EXPECT_NE(error_of([&] { w.finish(); }).find("tensor 'y' has 0 of its 8 bytes"), std::string::npos);
  }
  EXPECT_EQ(files_in(dir.path()), 0u);  // the abandoned temp file is removed
  EXPECT_NE(error_of([&] { SafetensorsWriter w(path, {{"x", DType::F32, {1}}, {"x", DType::F32, {1}}}); })
                .find("tensor 'x' is given twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { SafetensorsWriter w(path, {{"n", DType::F32, {-1}}}); }).find("negative dimension"),
            std::string::npos);
  EXPECT_NE(error_of([&] { SafetensorsWriter w(dir.file("no/dir/x.safetensors"), {}); })
                .find("cannot create temporary file"),
            std::string::npos);
  {
    SafetensorsWriter w(path, {{"x", DType::F32, {1}}});
    w.write("x", data, 4);
    EXPECT_NE(error_of([&] { w.write("x", data, 4); }).find("already complete"), std::string::npos);
    w.finish();
    EXPECT_NE(error_of([&] { w.finish(); }).find("finish() called twice"), std::string::npos);
  }
  EXPECT_EQ(SafetensorsFile::open(path)->tensor("x").item_f32(0), 1.f);
}

}  // namespace
}  // namespace qdit::io
