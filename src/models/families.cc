#include "qdit/models/families.h"

namespace qdit::models {

// Each family's registration function (defined in its folder), listed here once.
#define QDIT_MODEL_FAMILIES(X) \
  X(register_vae_models) \
  X(register_clip_models) \
  X(register_t5_models) \
  X(register_pixart_models) \
  X(register_sd3_models) \
  X(register_auraflow_models) \
  X(register_flux_models)

#define QDIT_DECLARE_FAMILY(fn) void fn();
QDIT_MODEL_FAMILIES(QDIT_DECLARE_FAMILY)

void register_builtin_models() {
#define QDIT_CALL_FAMILY(fn) fn();
  QDIT_MODEL_FAMILIES(QDIT_CALL_FAMILY)
}

}  // namespace qdit::models
