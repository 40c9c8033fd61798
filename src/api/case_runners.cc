#include "qdit/api/case_runners.h"

namespace qdit::api {
void register_builtin_case_runners() {
  register_model_case_runners();
  register_pipeline_case_runners();
  register_text_and_schedule_case_runners();
}
}  // namespace qdit::api
