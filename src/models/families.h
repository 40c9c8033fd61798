// One registration function per model family; register_builtin_models() calls them all.
#pragma once

namespace qdit::models {
void register_builtin_models();
}  // namespace qdit::models
