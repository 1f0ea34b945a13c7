#include "model/rope.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace caldera::model {

std::vector<float> rope_inv_freq(const LlamaConfig& config, DType table_dtype) {
  const int64_t dim = config.head_dim;
  CALDERA_CHECK_AS(ConfigError, dim > 0 && dim % 2 == 0, "rope: head_dim must be positive and even, got ", dim);
  CALDERA_CHECK_AS(ConfigError, config.rope_theta > 0, "rope: rope_theta must be positive, got ", config.rope_theta);
  std::vector<float> inv(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    // torch: arange(0, dim, 2).float() / dim in fp32, base ** that, 1.0 / that, in fp32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(config.rope_theta, static_cast<double>(exponent)));
  }
  const RopeScaling& s = config.rope_scaling;
  if (s.type == RopeScalingType::kLlama3) {
    CALDERA_CHECK_AS(ConfigError, s.factor > 0 && s.high_freq_factor > s.low_freq_factor && s.low_freq_factor > 0 &&
                                      s.original_max_position_embeddings > 0,
                     "rope_scaling (llama3): need factor > 0 and high_freq_factor > low_freq_factor > 0, got factor ",
                     s.factor, ", low ", s.low_freq_factor, ", high ", s.high_freq_factor);
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = old_len / s.low_freq_factor;
    const double high_freq_wavelen = old_len / s.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / static_cast<double>(f);
      if (wavelen > low_freq_wavelen) {
        f = static_cast<float>(static_cast<double>(f) / s.factor);
      } else if (!(wavelen < high_freq_wavelen)) {
        const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * static_cast<double>(f) / s.factor + smooth * static_cast<double>(f));
      }
    }
  }
  if (table_dtype == DType::kBF16)
    for (float& f : inv) f = bf16_to_f32(f32_to_bf16(f));
  else if (table_dtype == DType::kF16)
    for (float& f : inv) f = f16_to_f32(f32_to_f16(f));
  return inv;
}

}  // namespace caldera::model
