// RoPE inverse frequencies of a Llama-family config, computed as Hugging Face transformers does
// (modeling_rope_utils: `_compute_default_rope_parameters` and `_compute_llama3_parameters`), so the
// forward pass reproduces its logits. The rotation itself is NnKernels::rope.
#pragma once

#include <vector>

#include "model/llama_config.h"

namespace caldera::model {

/// head_dim/2 inverse frequencies, fp32 as transformers keeps them:
///   default: inv_freq[i] = 1 / theta^(float(2i) / head_dim)     (exponent rounded to fp32)
///   llama3:  wavelen = 2π / inv_freq; wavelen > original/low_freq_factor → inv_freq / factor;
///            wavelen < original/high_freq_factor → unchanged; otherwise
///            (1 − s)·inv_freq/factor + s·inv_freq with s = (original/wavelen − low)/(high − low).
/// The attention scaling factor of both types is 1. Throws ConfigError for an odd or non-positive
/// head_dim or a non-positive theta.
std::vector<float> rope_inv_freq(const LlamaConfig& config);

}  // namespace caldera::model
