// Activation memory of one forward pass, predicted from the architecture: each function replays
// the model's forward (the same order of tensor allocations and releases as the model code, at
// the real shapes) on a byte counter and returns the highest live total. Attention never
// materialises scores (fused kernel), so only q/k/v, their bf16 copies and the output count.
// Widths are read from the tensor headers where the config leaves them implicit (FFN sizes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "qdit/core/dtype.h"
#include "qdit/io/diffusers_folder.h"

namespace qdit::runtime {

struct ActivationContext {
  DType compute = DType::F32;     // bf16 compute makes rounded copies of attention inputs
  double gemm_input_bytes = 0;    // per input element of a GEMM call (ComponentWeights)
};

// Transformer forward on `batch` latents of latent_h x latent_w with `text_len` text tokens;
// includes the output [batch, C_out, h, w].
size_t transformer_activation_peak(const io::ModelFolder& f, int64_t batch, int64_t latent_h, int64_t latent_w,
                                   int64_t text_len, const ActivationContext& ctx);
// Text encoder on one [1, seq] prompt; includes the outputs (all hidden states when asked).
size_t text_encoder_activation_peak(const io::ModelFolder& f, int64_t seq, bool hidden_states,
                                    const ActivationContext& ctx);
// VAE decode of [batch, C, latent_h, latent_w]; includes the image. Convolutions reorder their
// input and output to oneDNN's blocked layouts when the channels allow it.
size_t vae_decode_activation_peak(const io::ModelFolder& f, int64_t batch, int64_t latent_h, int64_t latent_w);

}  // namespace qdit::runtime
