#include "qdit/nn/weight_binder.h"

#include <sstream>

#include "qdit/core/error.h"

namespace qdit::nn {

std::string BindReport::str() const {
  std::ostringstream os;
  auto list = [&](const char* title, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << title << " (" << v.size() << "):";
    size_t shown = 0;
    for (const auto& s : v) {
      if (++shown > 20) {
        os << "\n  ... and " << v.size() - 20 << " more";
        break;
      }
      os << "\n  " << s;
    }
    os << "\n";
  };
  list("missing tensors", missing);
  list("wrong-shape tensors", wrong_shape);
  list("unused tensors", unused);
  return os.str();
}

WeightBinder::WeightBinder(std::shared_ptr<const io::WeightSource> source, std::string component)
    : state_(std::make_shared<State>()) {
  QDIT_CHECK(source, "[weights] no weight source for ", component);
  state_->source = std::move(source);
  state_->component = std::move(component);
}

WeightBinder WeightBinder::detached() const {
  WeightBinder fresh(state_->source, state_->component);
  fresh.prefix_ = prefix_;
  return fresh;
}

WeightBinder WeightBinder::sub(const std::string& name) const { return WeightBinder(state_, prefix_ + name + "."); }

bool WeightBinder::has(const std::string& name) const { return state_->source->find(prefix_ + name) != nullptr; }

std::map<std::string, Tensor> WeightBinder::take_all() const {
  std::map<std::string, Tensor> out;
  for (const std::string& n : state_->source->names()) {
    if (n.size() <= prefix_.size() || n.compare(0, prefix_.size(), prefix_) != 0) continue;
    out[n.substr(prefix_.size())] = state_->source->tensor(n);
    state_->used.insert(n);
  }
  return out;
}

Tensor WeightBinder::get_optional(const std::string& name, const Shape& shape) const {
  if (!has(name)) return Tensor();
  return get(name, shape);
}

Tensor WeightBinder::get(const std::string& name, const Shape& shape) const {
  const std::string full = prefix_ + name;
  const io::TensorRecord* rec = state_->source->find(full);
  if (!rec) {
    state_->report.missing.push_back(full + " " + shape_str(shape));
    return Tensor();
  }
  state_->used.insert(full);
  if (rec->shape != shape) {
    state_->report.wrong_shape.push_back(full + ": expected " + shape_str(shape) + ", found " + shape_str(rec->shape));
    return Tensor();
  }
  return state_->source->tensor(full);
}

BindReport WeightBinder::finish() const {
  BindReport r = state_->report;
  for (const auto& n : state_->source->names())
    if (!state_->used.count(n)) r.unused.push_back(n);
  if (!r.ok())
    fail("[weights] ", state_->component, " (", state_->source->describe(), ") does not match its config:\n", r.str());
  return r;
}

}  // namespace qdit::nn
