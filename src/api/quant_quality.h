// The quantization quality table: every scheme applied to the transformer and, separately, to
// the text encoders of each pipeline reference case, with the SNR of the final latents and of
// the image against the float32 reference (the case's recorded diffusers outputs).
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace qdit::api {

struct QualityRow {
  std::string case_name, scheme, target;  // target: "transformer" or "text encoders"
  double latents_snr_db = 0, image_snr_db = 0;
  double embeds_snr_db = INFINITY;  // worst prompt-embedding SNR (text-encoder rows)
};

// Text encoders are only measured on cases that run them (the *_text cases encode the prompt;
// the others are fed recorded embeddings).
std::vector<QualityRow> measure_quant_quality(const std::vector<std::string>& case_dirs,
                                              const std::vector<std::string>& schemes,
                                              const std::function<void(int done, int total)>& progress = {});

// Markdown: one table per target, a row per scheme, a column per case ("latents / image" dB).
std::string quality_markdown(const std::vector<QualityRow>& rows);

}  // namespace qdit::api
