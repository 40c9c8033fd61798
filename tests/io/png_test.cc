// PNG writer: pixels round-trip through libpng with diffusers' numpy_to_pil rounding, text chunks
// survive, and bad input is reported.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "qdit/core/error.h"
#include "qdit/io/png_writer.h"

using namespace qdit;

TEST(Png, RoundTripWithRoundingAndText) {
  const int64_t h = 3, w = 5;
  Tensor img = Tensor::empty({1, 3, h, w}, DType::F32);
  float* p = img.data<float>();
  for (int64_t i = 0; i < img.numel(); ++i) p[i] = static_cast<float>(i) / static_cast<float>(img.numel() - 1);
  p[0] = -0.5f;                    // clamped to 0
  p[1] = 2.0f;                     // clamped to 255
  p[2] = 0.5f / 255.0f;            // 0.5 rounds half to even -> 0
  p[3] = 1.5f / 255.0f;            // 1.5 -> 2
  const std::string path = (std::filesystem::temp_directory_path() / "qdit_png_test.png").string();
  io::write_png(path, img, {{"parameters", "a cat\nSteps: 4"}, {"Software", "qdit"}});
  io::PngImage r = io::read_png(path);
  ASSERT_EQ(r.width, w);
  ASSERT_EQ(r.height, h);
  EXPECT_EQ(r.rgb[0], 0);
  EXPECT_EQ(r.rgb[3], 255);   // pixel 1, red channel
  EXPECT_EQ(r.rgb[6], 0);     // pixel 2
  EXPECT_EQ(r.rgb[9], 2);     // pixel 3
  // Green channel of the last pixel: value index (1*h*w + h*w-1).
  const float g = p[h * w + h * w - 1];
  EXPECT_EQ(r.rgb[(h * w - 1) * 3 + 1], static_cast<uint8_t>(std::nearbyint(g * 255.0f)));
  EXPECT_EQ(r.text["parameters"], "a cat\nSteps: 4");
  EXPECT_EQ(r.text["Software"], "qdit");
  std::filesystem::remove(path);
}

TEST(Png, BadInputIsReported) {
  EXPECT_THROW(io::write_png("/tmp/x.png", Tensor::zeros({2, 4, 4}, DType::F32)), Error);
  EXPECT_THROW(io::write_png("/nonexistent-dir/x.png", Tensor::zeros({3, 4, 4}, DType::F32)), Error);
  const std::string path = (std::filesystem::temp_directory_path() / "qdit_not_png.png").string();
  FILE* f = fopen(path.c_str(), "w");
  fputs("not a png", f);
  fclose(f);
  try {
    io::read_png(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  std::filesystem::remove(path);
}
