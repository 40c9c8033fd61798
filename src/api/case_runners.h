// Registration of the built-in case runners (one per case kind), called once by run_case().
#pragma once

namespace qdit::api {
void register_builtin_case_runners();
// Per-kind registration functions, each in its own file.
void register_model_case_runners();  // transformer, text_encoder, vae
void register_pipeline_case_runners();
void register_text_and_schedule_case_runners();  // tokenizer, scheduler
}  // namespace qdit::api
