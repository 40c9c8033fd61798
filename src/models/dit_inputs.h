// Input checks the patch-based DiTs share; every message names the input and what was expected.
#pragma once
#include <cstdint>
#include <string>

#include "qdit/core/tensor.h"

namespace qdit::models {

std::string desc_or_undefined(const Tensor& t);

struct PatchGrid {
  int64_t batch = 0, height = 0, width = 0;  // latent pixels
  int64_t grid_h = 0, grid_w = 0;            // patches
  int64_t tokens() const { return grid_h * grid_w; }
};

// latents: [B, channels, H, W] with H, W positive multiples of `patch`; `where` prefixes errors.
PatchGrid check_patched_latents(const Tensor& latents, int64_t channels, int64_t patch, const char* where);

}  // namespace qdit::models
