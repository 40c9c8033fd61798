#include "qdit/nn/lazy_blocks.h"

namespace qdit::nn {

namespace {

// Stands in for a Linear whose weights were only checked.
class CheckedOnlyLinear : public kernels::LinearKernel {
 public:
  CheckedOnlyLinear(std::string path, int64_t in, int64_t out) : path_(std::move(path)), in_(in), out_(out) {}
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  size_t weight_bytes() const override { return 0; }
  void forward_into(const Tensor&, Tensor&, const kernels::GemmOptions&) const override {
    fail("[blocks] ", path_, " was only checked at load (streamed block); it cannot run");
  }

 private:
  std::string path_;
  int64_t in_, out_;
};

class ShapeCheckingFactory : public LinearFactory {
 public:
  explicit ShapeCheckingFactory(std::shared_ptr<const LinearFactory> inner) : inner_(std::move(inner)) {}
  bool reads_parts() const override { return inner_->reads_parts(); }
  std::unique_ptr<kernels::LinearKernel> make(const std::string& path, const Tensor& weight, const Tensor&,
                                              DType) const override {
    // nn::Linear already checked the [out, in] shape against the binder.
    return std::make_unique<CheckedOnlyLinear>(path, weight.size(-1), weight.size(0));
  }
  std::unique_ptr<kernels::LinearKernel> make_from_parts(const std::string& path, std::map<std::string, Tensor> parts,
                                                         int64_t in, int64_t out, const Tensor&, DType) const override {
    inner_->check_parts(path, std::move(parts), in, out);
    return std::make_unique<CheckedOnlyLinear>(path, in, out);
  }

 private:
  std::shared_ptr<const LinearFactory> inner_;
};

}  // namespace

std::shared_ptr<const LinearFactory> shape_checking_factory(std::shared_ptr<const LinearFactory> inner) {
  return std::make_shared<ShapeCheckingFactory>(std::move(inner));
}

}  // namespace qdit::nn
