// PNG output of generated images (libpng), with text chunks carrying the generation parameters
// ("parameters", as other image tools read them) so an image documents how it was made.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"

namespace qdit::io {

// image: [1, 3, H, W] or [3, H, W] f32 in [0, 1]; converted as diffusers' numpy_to_pil does:
// round(x * 255) (half to even) to uint8. Written atomically (temp file + rename).
void write_png(const std::string& path, const Tensor& image, const std::map<std::string, std::string>& text = {});

struct PngImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
  std::map<std::string, std::string> text;
};
// Reads an 8-bit RGB PNG (for tests and tools); errors name the file.
PngImage read_png(const std::string& path);

}  // namespace qdit::io
