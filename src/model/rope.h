// RoPE inverse frequencies of a Llama-family config, computed as Hugging Face transformers does
// (modeling_rope_utils: `_compute_default_rope_parameters` and `_compute_llama3_parameters`), so the
// forward pass reproduces its logits. The rotation itself is NnKernels::rope.
#pragma once

#include <vector>

#include "core/dtype.h"
#include "model/llama_config.h"

namespace caldera::model {

/// head_dim/2 inverse frequencies, fp32 as transformers keeps them:
///   default: inv_freq[i] = 1 / theta^(float(2i) / head_dim)     (exponent rounded to fp32)
///   llama3:  wavelen = 2π / inv_freq; wavelen > original/low_freq_factor → inv_freq / factor;
///            wavelen < original/high_freq_factor → unchanged; otherwise
///            (1 − s)·inv_freq/factor + s·inv_freq with s = (original/wavelen − low)/(high − low).
/// The attention scaling factor of both types is 1.
///
/// table_dtype: the precision transformers holds the table in. inv_freq is a floating-point buffer
/// of the module, so a checkpoint loaded in its bf16/fp16 storage dtype casts it (and casting the
/// model back to fp32 does not restore the lost bits): Hugging Face evaluations of bf16 models,
/// golden.json included, rotate with bf16-rounded frequencies. kBF16 / kF16 round each value to that
/// type (round to nearest even) and back; any other dtype keeps fp32. At position 500 the rounding
/// moves angles by up to ~1 rad, so matching HF's per-token NLLs needs the same table.
/// Throws ConfigError for an odd or non-positive head_dim or a non-positive theta.
std::vector<float> rope_inv_freq(const LlamaConfig& config, DType table_dtype = DType::kF32);

}  // namespace caldera::model
