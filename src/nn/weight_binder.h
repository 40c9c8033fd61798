// Path-scoped weight binding: modules ask for "to_q.weight" under their prefix with the shape the
// config implies; the binder collects every missing and wrong-shape tensor and, at finish(),
// reports them all at once together with the checkpoint tensors no module used.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "qdit/core/tensor.h"
#include "qdit/io/weight_source.h"

namespace qdit::nn {

struct BindReport {
  std::vector<std::string> missing;      // "name (expected shape)"
  std::vector<std::string> wrong_shape;  // "name: expected X, found Y"
  std::vector<std::string> unused;
  bool ok() const { return missing.empty() && wrong_shape.empty(); }
  std::string str() const;
};

class WeightBinder {
 public:
  WeightBinder(std::shared_ptr<const io::WeightSource> source, std::string component);

  // A binder for a child module: prefix "blocks.0." etc.
  WeightBinder sub(const std::string& name) const;
  WeightBinder sub(const std::string& name, int64_t index) const { return sub(name + "." + std::to_string(index)); }

  // Returns the tensor (zero-copy view) or an undefined tensor after recording the problem.
  Tensor get(const std::string& name, const Shape& shape) const;
  // Like get, but absence is not an error.
  Tensor get_optional(const std::string& name, const Shape& shape) const;
  bool has(const std::string& name) const;
  // Every tensor under this binder's prefix, by name relative to it, marked used (pre-quantized
  // Linear parts, whose names and shapes the scheme checks).
  std::map<std::string, Tensor> take_all() const;
  std::string path(const std::string& name) const { return prefix_ + name; }
  const std::shared_ptr<const io::WeightSource>& source() const { return state_->source; }
  // A binder at the same prefix with its own record of used tensors and problems, for building
  // modules on another thread (streamed blocks) without touching this binder's state.
  WeightBinder detached() const;

  // Everything recorded so far plus unused tensors; throws if anything is missing or mis-shaped.
  BindReport finish() const;

 private:
  struct State {
    std::shared_ptr<const io::WeightSource> source;
    std::string component;
    std::set<std::string> used;
    BindReport report;
  };
  WeightBinder(std::shared_ptr<State> state, std::string prefix) : state_(std::move(state)), prefix_(std::move(prefix)) {}
  std::shared_ptr<State> state_;
  std::string prefix_;
};

}  // namespace qdit::nn
