// Reference cases in the format of tests/golden (case.json + inputs/outputs.safetensors + model
// folders), and the one code path that runs them: `qdit check` and the test suite both call
// run_case(). Each case kind (tokenizer, text_encoder, transformer, vae, scheduler, pipeline) has a
// runner that produces named tensors; every produced name present in outputs.safetensors is
// compared against its reference.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/json_config.h"
#include "qdit/io/safetensors.h"
#include "qdit/quant/quant_config.h"

namespace qdit::api {

struct GoldenCase {
  std::string dir;
  io::JsonConfig info;  // case.json
  std::shared_ptr<io::SafetensorsFile> inputs, outputs;
  std::string kind() const;
  std::string path(const std::string& sub) const { return dir + "/" + sub; }
  Tensor input(const std::string& name) const;  // errors name the case and tensor
  bool has_input(const std::string& name) const;
  static GoldenCase open(const std::string& dir);
};

struct CheckOptions {
  DType compute = DType::F32;
  quant::PipelineQuantConfig quant;  // quantize components on load (per case component name)
  bool fuse_qkv = false;              // q/k/v projections as one GEMM
  std::optional<double> tolerance;  // overrides the per-kind default (relative to max(1, max|ref|))
  bool verbose = false;
};

struct TensorCheck {
  std::string name;
  double max_abs_err = 0, max_ref = 0, tolerance = 0, snr_db = 0;
  bool pass = false;
};

struct CheckReport {
  std::string case_name, kind;
  // Runs at another precision (bf16 compute, quantized weights) without an explicit tolerance only
  // report errors and SNR against the float32 reference: there is no pass/fail to give.
  bool informational = false;
  std::vector<TensorCheck> tensors;
  std::vector<std::string> not_produced;  // reference outputs this runner does not compute
  bool pass() const;
  std::string str() const;
};

using CaseOutputs = std::map<std::string, Tensor>;
using CaseRunner = std::function<CaseOutputs(const GoldenCase&, const CheckOptions&)>;

void register_case_runner(const std::string& kind, CaseRunner runner);
CheckReport run_case(const std::string& dir, const CheckOptions& opt = {});
// Default relative tolerance: 1e-4 for components, 1e-3 for pipelines (of max(1, max|ref|) resp. max|ref|).
double default_tolerance(const std::string& kind);
TensorCheck compare_tensor(const std::string& name, const Tensor& got, const Tensor& ref, double rel_tol,
                           bool relative_to_max_only);

}  // namespace qdit::api
