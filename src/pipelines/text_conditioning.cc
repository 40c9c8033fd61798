#include "qdit/pipelines/text_conditioning.h"

#include <cstring>

#include "qdit/core/error.h"
#include "qdit/kernels/elementwise.h"
#include "qdit/pipelines/common.h"
#include "qdit/pipelines/denoise.h"

namespace qdit::pipelines {

EncodedText encode_text(const tokenizers::Tokenizer& tok, const models::TextEncoder& enc, const std::string& text,
                        const TextEncodeSpec& spec, const std::string& role, const RunHooks& hooks) {
  EncodedText r;
  tokenizers::TokenizedBatch b = tok.encode({text}, spec.max_length, /*pad_to_max=*/true, /*truncate=*/true);
  r.ids = b.ids_tensor();
  r.mask = b.mask_tensor();
  if (!spec.trace_name.empty()) {
    trace(hooks, "tok." + spec.trace_name + "." + role + ".input_ids", r.ids);
    if (spec.trace_mask) trace(hooks, "tok." + spec.trace_name + "." + role + ".attention_mask", r.mask);
  }
  r.out = enc.encode(r.ids, spec.pass_mask ? r.mask : Tensor(), spec.hidden_states);
  return r;
}

void decode_latents(const models::VaeDecoder& vae, const Tensor& latents, bool add_shift, const RunHooks& hooks,
                    GenerateResult& result) {
  Tensor z = latents.contiguous().clone();
  kernels::binary_inplace(z, Tensor::full({1}, vae.scaling_factor()), kernels::BinaryOp::Div);
  if (add_shift) kernels::add_inplace(z, Tensor::full({1}, vae.shift_factor()));
  Tensor decoded = vae.decode(z);
  trace(hooks, "image_decoded", decoded);
  result.image = postprocess_image(decoded);
  trace(hooks, "images_np", result.image.permute({0, 2, 3, 1}).contiguous());
}

Tensor pad_last_dim(const Tensor& x_in, int64_t dim) {
  Tensor x = x_in.contiguous();
  const int64_t d = x.size(-1);
  QDIT_CHECK(d <= dim, "[pipeline] cannot pad features of ", x.desc(), " down to ", dim);
  Shape s = x.shape();
  s.back() = dim;
  Tensor out = Tensor::zeros(s, DType::F32);
  const int64_t rows = x.numel() / d;
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.data<float>() + r * dim, x.data<float>() + r * d, d * sizeof(float));
  return out;
}

}  // namespace qdit::pipelines
