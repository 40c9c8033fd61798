// Registration of the built-in pipelines (explicit calls, one per family file).
#pragma once

namespace qdit::pipelines {
void register_builtin_pipelines();
void register_pixart_pipelines();
void register_sd3_pipelines();
void register_flux_pipelines();
void register_auraflow_pipelines();
}  // namespace qdit::pipelines
