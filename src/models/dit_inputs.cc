#include "qdit/models/dit_inputs.h"

#include "qdit/core/error.h"

namespace qdit::models {

std::string desc_or_undefined(const Tensor& t) { return t.defined() ? t.desc() : std::string("undefined"); }

PatchGrid check_patched_latents(const Tensor& latents, int64_t channels, int64_t patch, const char* where) {
  QDIT_CHECK(latents.defined() && latents.dim() == 4 && latents.size(1) == channels, where, "latents: expected [B, ",
             channels, ", H, W], got ", desc_or_undefined(latents));
  PatchGrid g{latents.size(0), latents.size(2), latents.size(3)};
  QDIT_CHECK(g.batch > 0 && g.height > 0 && g.width > 0, where, "latents: empty tensor ", latents.desc());
  QDIT_CHECK(g.height % patch == 0 && g.width % patch == 0, where, "latents: H and W must be multiples of patch_size ",
             patch, ", got ", latents.desc());
  g.grid_h = g.height / patch;
  g.grid_w = g.width / patch;
  return g;
}

}  // namespace qdit::models
