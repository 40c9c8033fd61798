#include "qdit/io/png_writer.h"

#include <png.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "qdit/core/error.h"

namespace qdit::io {

namespace {
struct FileCloser {
  void operator()(FILE* f) const { if (f) std::fclose(f); }
};
}  // namespace

void write_png(const std::string& path, const Tensor& image_in, const std::map<std::string, std::string>& text) {
  Tensor image = image_in.dim() == 4 ? image_in.select(0, 0) : image_in;
  QDIT_CHECK(image.dim() == 3 && image.size(0) == 3, "[png] ", path, ": expected an image [3, H, W], got ",
             image_in.desc());
  image = image.contiguous().to(DType::F32);
  const int64_t h = image.size(1), w = image.size(2);
  std::vector<uint8_t> rgb(static_cast<size_t>(h * w * 3));
  const float* p = image.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < h * w; ++i) {
      const float v = std::nearbyint(std::fmin(std::fmax(p[c * h * w + i], 0.0f), 1.0f) * 255.0f);
      rgb[i * 3 + c] = static_cast<uint8_t>(v);
    }

  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  std::unique_ptr<FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  QDIT_CHECK(f, "[png] cannot write ", tmp);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  QDIT_CHECK(png && info, "[png] libpng initialisation failed");
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::remove(tmp.c_str());
    fail("[png] libpng failed while writing ", path);
  }
  png_init_io(png, f.get());
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_text> chunks;
  for (const auto& [k, v] : text) {
    png_text t{};
    t.compression = v.size() > 1024 ? PNG_TEXT_COMPRESSION_zTXt : PNG_TEXT_COMPRESSION_NONE;
    t.key = const_cast<char*>(k.c_str());
    t.text = const_cast<char*>(v.c_str());
    t.text_length = v.size();
    chunks.push_back(t);
  }
  if (!chunks.empty()) png_set_text(png, info, chunks.data(), static_cast<int>(chunks.size()));
  png_write_info(png, info);
  for (int64_t y = 0; y < h; ++y) png_write_row(png, rgb.data() + y * w * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  QDIT_CHECK(std::fflush(f.get()) == 0, "[png] write error on ", tmp);
  f.reset();
  QDIT_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "[png] cannot rename ", tmp, " to ", path);
}

PngImage read_png(const std::string& path) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  QDIT_CHECK(f, "[png] cannot open ", path);
  unsigned char sig[8];
  QDIT_CHECK(std::fread(sig, 1, 8, f.get()) == 8 && png_sig_cmp(sig, 0, 8) == 0, "[png] ", path, " is not a PNG file");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  QDIT_CHECK(png && info, "[png] libpng initialisation failed");
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail("[png] ", path, " is corrupt or truncated");
  }
  png_init_io(png, f.get());
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  PngImage img;
  img.width = png_get_image_width(png, info);
  img.height = png_get_image_height(png, info);
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (color != PNG_COLOR_TYPE_RGB || depth != 8) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail("[png] ", path, ": only 8-bit RGB is supported");
  }
  img.rgb.resize(static_cast<size_t>(img.width * img.height * 3));
  for (int64_t y = 0; y < img.height; ++y) png_read_row(png, img.rgb.data() + y * img.width * 3, nullptr);
  png_read_end(png, info);
  png_textp texts = nullptr;
  int n = 0;
  png_get_text(png, info, &texts, &n);
  for (int i = 0; i < n; ++i) img.text[texts[i].key] = std::string(texts[i].text, texts[i].text_length);
  png_destroy_read_struct(&png, &info, nullptr);
  return img;
}

}  // namespace qdit::io
