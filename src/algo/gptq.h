// Plain GPTQ (Frantar et al. 2022) as a baseline method: per-channel or grouped min-max
// quantization at 2..8 bits with the Hessian error feedback of spqr.md §3, through the shared
// engine in gptq_core.h.
//
// The grid is GPTQ's own (not SpQR's), from the shared scalar grid (core/e8p_tables.h): per row of
// a group, [min(x, 0), max(x, 0)] (the range always includes 0; all-zero rows use [−1, 1]),
// scale = range/maxq, integer zero point zero = rint(−lo/scale) in [0, maxq]; the scale is then
// rounded to fp16 (how it is stored) before any code is chosen, so GPTQ compensates for it. Codes
// q = clamp(rint(x/scale + zero), 0, maxq) (equal to GPTQ's rint(x/scale) + zero except at exact
// half-way ties), ŵ = scale·(q − zero).
// With act_order, groups are consecutive PERMUTED columns (GPTQ's default, not static groups).
//
// Unit tensors (TensorMap names; all in permuted column coordinates; documented in
// docs/format.md "GPTQ"). "Packed" = quant::pack_bits: LSB-first, each row starts a 32-bit word.
//   format_version I64 []   1
//   shape       I64 [2]      {m, n}
//   bits        I64 []       code bits b (2..8)
//   group_size  I64 []       columns per group (n for per-channel)
//   codes       I32 [m, ceil(n·b/32)]   packed weight codes in [0, 2^b − 1]
//   scales      F16 [m, G]   per (row, group) scale, G = ceil(n / group_size)
//   zeros       I32 [m, ceil(G·b/32)]   packed integer zero points in [0, 2^b − 1]
//   perm        I32 [n]      permuted column j is original column perm[j]
// Decode: W_perm[i, j] = scale[i, g]·(code[i, j] − zero[i, g]), g = j / group_size (fp32);
// W[:, perm[j]] = W_perm[:, j].
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algo/gptq_core.h"
#include "algo/method.h"

namespace caldera::algo {

/// Typed parameters of `--method gptq` (CLI option names in the comments).
struct GptqParams {
  int bits = 4;                 ///< --bits: code bits, 2..8
  int64_t group_size = 128;     ///< --group-size: columns per scale group; 0 = per-channel (one group per row)
  double percdamp = 0.01;       ///< --percdamp: λ = percdamp · mean diag(H) (GPTQ's default 0.01)
  ColumnOrder order = ColumnOrder::kActOrder;  ///< --act-order on|off
  int64_t block_size = 128;     ///< --block-size: lazy-update block width (speed only)

  /// Every invalid option, one message each naming it (empty when valid).
  [[nodiscard]] std::vector<std::string> problems() const;
  /// Throws ConfigError listing every problem at once.
  void validate() const;
  /// key=value pairs for run.json and quantization_config.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> key_values() const;
};

/// What GPTQ stores for one m×n matrix, in permuted column coordinates.
struct GptqEncoding {
  int bits = 4;
  int64_t group_size = 0;          ///< effective columns per group (n for per-channel)
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int32_t> perm;       ///< cols
  std::vector<uint8_t> codes;      ///< rows×cols
  std::vector<uint16_t> scales;    ///< rows×G fp16
  std::vector<uint8_t> zeros;      ///< rows×G
  int64_t groups() const noexcept { return (cols + group_size - 1) / group_size; }
  /// Throws IoError naming the first inconsistency.
  void validate() const;
};

/// Exact storage bits of a GPTQ matrix: bits·m·n + (16 + bits)·m·G (fp16 scale + b-bit zero).
double gptq_storage_bits(int bits, int64_t m, int64_t n, int64_t group_size);

/// Result of quantizing one matrix.
struct GptqResult {
  GptqEncoding encoding;
  HostMatrix<float> w_hat;   ///< m×n host, original coordinates: the simulated Ŵ (decode gives the same bits)
  double percdamp_used = 0;
  double hessian_s = 0;      ///< seconds in prepare_gptq_hessian
  GptqTimings loop;          ///< seconds in the column loop (host / backend)
};

/// Runs GPTQ on w (m×n host fp32, original coordinates) with the input statistics of its layer.
/// Heavy steps on `backend`; throws ConfigError for invalid params, Error for shape mismatches,
/// NumericError when the Hessian cannot be factorised.
GptqResult gptq_quantize_matrix(linalg::Backend& backend, MatrixView<const float> w, const InputStats& stats,
                                const GptqParams& params, const std::function<void(double)>& progress = {});

/// Ŵ in permuted coordinates from an encoding (host).
HostMatrix<float> decode_permuted(const GptqEncoding& encoding);
TensorMap gptq_to_tensors(const GptqEncoding& encoding);
/// Inverse of gptq_to_tensors; throws IoError naming a missing or malformed tensor.
GptqEncoding gptq_from_tensors(const TensorMap& tensors);

/// The Method of `--method gptq`; validates params on construction.
std::unique_ptr<Method> make_gptq_method(const GptqParams& params);

}  // namespace caldera::algo
