#include "qdit/pipelines/families.h"

namespace qdit::pipelines {
void register_builtin_pipelines() { register_pixart_pipelines(); }
}  // namespace qdit::pipelines
