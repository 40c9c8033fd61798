#include "qdit/pipelines/families.h"

namespace qdit::pipelines {
void register_builtin_pipelines() {
  register_pixart_pipelines();
  register_sd3_pipelines();
  register_flux_pipelines();
  register_auraflow_pipelines();
}
}  // namespace qdit::pipelines
