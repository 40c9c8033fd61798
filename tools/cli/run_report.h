// What `qdit generate` reports after a run: the summary on stderr (components, and per phase the
// time, the measured tracked and RSS peaks next to the planner's prediction) and --report JSON,
// which `qdit bench` reads back from its child runs.
#pragma once
#include <optional>
#include <string>

#include "qdit/pipelines/pipeline.h"
#include "qdit/runtime/memory_planner.h"

namespace qdit::cli {

struct RunReport {
  std::string model, pipeline, dtype;
  pipelines::PipelineOptions options;
  pipelines::GenerateResult result;
  double load_seconds = 0;
  std::optional<runtime::MemoryPrediction> prediction;
};

void print_summary(const RunReport& r);
void write_report(const std::string& path, const RunReport& r);

// "out.png" for a single image; "out_0.png", "out_1.png", ... for a batch.
std::string numbered_path(const std::string& path, int64_t index, int64_t count);

}  // namespace qdit::cli
