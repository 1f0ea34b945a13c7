// CALDERA (W ≈ Q + L·R) and QuIP# (its rank-0 case) as a Method (spec caldera-quipsharp.md §1-§3).
//
// Per matrix: global RMS scaling, randomized Hadamard transform of W and H (§4), then T_out outer
// iterations of [LR update (§2: rank-constrained regression init + LPLR with quantized factors),
// Q update (§3: Hessian downdate + LDLQ with E8P and tune sweeps)], keeping the best iterate (§1.2).
// QuIP# is rank 0: RHT + E8P LDLQ + tune sweeps, one outer iteration.
//
// Stored tensors (CompressedUnit::tensors; reconstruct() rebuilds W from exactly these):
//   format_version  I64 []        1
//   global_scale    F32 []        s_g = RMS(W) (W is compressed as W/s_g)
//   rht             I64 []        1: RHT applied (su/sv are its signs); 0: none (su = sv = +1)
//   su              F32 [n]       ±1 input-side signs,  sv  F32 [m]  ±1 output-side signs
//   q_bits          I64 []        2, 3, 4: E8P12, E8P12RVQ3B, E8P12RVQ4B
//   q_codes         I64 [m, n·q_bits/64]   codes of Q packed as spec §5.5 (RVQ: stages concatenated)
//   q_scale         F32 []        Q = q_scale · DECODE(q_codes)
//   rank            I64 []        k (0 for QuIP#)
//   when rank > 0:
//   lr_format       I64 []        0: fp16 factors; 1: E8P, one scale per factor (paper);
//                                 2: E8P, one fp16 scale per row of Lᵀ and of R; 3: uniform per row
//   lr_bits         I64 []        16 for fp16, else the code width
//   lr_format 0:    l F16 [m, k], r F16 [k, n]
//   lr_format 1, 2: lt_codes I64 [k, m·lr_bits/64] (codes of Lᵀ, §5.5), r_codes I64 [k, n·lr_bits/64],
//                   lt_scales / r_scales: F32 [1] (format 1) or F16 [k] (format 2);
//                   Lᵀ = diag(lt_scales)·DECODE(lt_codes), R = diag(r_scales)·DECODE(r_codes)
//   lr_format 3:    lt_codes / r_codes I32 [k, ⌈cols·lr_bits/32⌉] LSB-first bit-packed min-max codes,
//                   lt_scales, lt_zeros, r_scales, r_zeros F16 [k]; X = scale·(code − zero) per row
// The matrix in the original basis (spec §7.2):
//   W ≈ s_g · D_SV Had_m (Q + L·R) Had_nᵀ D_SU,   L = (Lᵀ)ᵀ.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "algo/downdate.h"
#include "algo/factor_quant.h"
#include "algo/low_rank.h"
#include "algo/method.h"

namespace caldera::algo {

/// Rounding of the backbone Q (`--q-rounding`).
enum class QRounding : uint8_t {
  kLdlq,     ///< LDLQ with the (downdated) Hessian and tune sweeps (spec §3.3-§3.5)
  kNearest,  ///< plain nearest-codeword rounding at RMS 1, no Hessian (spec §3.7)
};
/// Incoherence processing (`--rht on|off`).
enum class Incoherence : uint8_t { kRht, kNone };
/// Hessian downdate before the Q update (`--downdate on|off`; only with rank > 0).
enum class DowndateMode : uint8_t { kOn, kOff };

std::string_view to_string(QRounding q) noexcept;

/// CALDERA / QuIP# parameters. The defaults are the paper script's (spec §1.5, d3bb3a4): rank 256,
/// 4-bit E8P factors with one scale each, 2-bit Q, 20 outer / 50 inner iterations, RHT and downdate
/// on, exact SVD. CLI option of each field in brackets.
struct CalderaParams {
  int rank = 256;            ///< [--rank] k; 0 = QuIP#. Multiple of 16 for lattice factors (§5.5)
  int bits_q = 2;            ///< [--bits-q] 2, 3, 4 → E8P12, E8P12RVQ3B, E8P12RVQ4B
  int bits_lr = 4;           ///< [--bits-lr] 16 = fp16 factors; e8p: 2..4; uniform: 2..8
  int iters = 20;            ///< [--iters] outer iterations T_out (>= 1)
  int lplr_iters = 50;       ///< [--lplr-iters] inner LPLR iterations T_in (>= 0)
  FactorFormat factor_format = FactorFormat::kE8p;              ///< [--factor-format e8p|uniform]
  FactorScaleMode factor_scales = FactorScaleMode::kPerTensor;  ///< [--factor-scales per-tensor|per-row]
  FactorRounding factor_rounding = FactorRounding::kNearest;     ///< [--factor-rounding nearest|ldlq]
  LrSplit lr_split = LrSplit::kUnbalanced;                      ///< [--lr-split unbalanced|balanced]
  LrSvdSolver lr_svd = LrSvdSolver::kExact;                     ///< [--lr-svd exact|randomized]
  Incoherence incoherence = Incoherence::kRht;                  ///< [--rht on|off]
  DowndateMode downdate = DowndateMode::kOn;                    ///< [--downdate on|off]
  DowndateRidge downdate_ridge = DowndateRidge::kPsd;           ///< [--downdate-ridge psd|exact]
  /// [--downdate-weight] fraction w of the low-rank directions removed from H (spec: 1).
  double downdate_weight = 1.0;
  QRounding q_rounding = QRounding::kLdlq;                      ///< [--q-rounding ldlq|nearest]
  /// [--q-input-rms] ρ, the RMS LDLQ sees (spec §3.4); 0 = the codebook's opt_scale (1.03 for E8P12,
  /// CALDERA's choice); QuIP#'s own 2-bit recipe uses 0.9 (pitfall P7).
  double q_input_rms = 0.0;
  int tune_iters = 10;               ///< [--tune-iters] LDLQ tune sweeps (spec §3.5)
  double hessian_ridge = 0.01;       ///< [--sigma-reg] σ_reg of spec §6.5
  double downdate_sigma = 0.01;      ///< [--sigma-reg2] σ₂ of spec §3.2

  /// The paper's recipe (= the defaults).
  static CalderaParams paper() { return {}; }
  /// QuIP# at `bits_q` bits: rank 0, one outer iteration, ρ = 0.9 (QuIP#'s scale_override).
  static CalderaParams quip_sharp(int bits_q = 2);

  /// Every invalid field, one message each naming its option (empty when valid).
  [[nodiscard]] std::vector<std::string> problems() const;
  /// Throws ConfigError listing every problem at once.
  void validate() const;
  /// key=value pairs (option names without dashes) for run.json and quantization_config.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> key_values() const;
};

/// CALDERA / QuIP# as a Method. Thread-compatible (const methods, no shared state).
class CalderaMethod final : public Method {
 public:
  /// `name` is "caldera" or "quip" (what name() reports). Validates `params` (ConfigError).
  CalderaMethod(CalderaParams params, std::string name);

  std::string name() const override { return name_; }
  std::vector<std::pair<std::string, std::string>> parameters() const override { return params_.key_values(); }
  /// Spec §1.2 for w (m×n host fp32) and the raw statistics (processed per §6.5 here). Needs
  /// m % 16 == 0 and n % 64 == 0 (§5.5 packing), n with a Hadamard construction (RHT on), and for
  /// rank > 0: rank <= min(m, n) and, for lattice factors, rank % 16 == 0 and m % 64 == 0. Throws
  /// ConfigError naming the unit otherwise. Checkpoints after every outer iteration when
  /// context.checkpoint is set, resuming from a saved state bit-identically; throws StopRequested
  /// after a save when context.stop_requested() is true.
  CompressedUnit compress(const MethodContext& context, MatrixView<const float> w,
                          const InputStats& stats) const override;
  /// Rebuilds W (original basis) from the tensors listed at the top of this file.
  HostMatrix<float> reconstruct(linalg::Backend& backend, const TensorMap& tensors) const override;
  /// Rank > 0: base = s_g·D_SV Had_m Q Had_nᵀ D_SU, lora_b = s_g·D_SV Had_m L (m×k),
  /// lora_a = R Had_nᵀ D_SU (k×n), so base + lora_b·lora_a = reconstruct(tensors) up to fp32
  /// rounding. Rank 0 (QuIP#): std::nullopt.
  std::optional<LowRankSplit> split_low_rank(linalg::Backend& backend, const TensorMap& tensors) const override;
  double cost_estimate(int64_t m, int64_t n) const override;
  /// Replay of compress()'s allocations and its operation counts (algo/caldera_estimate.cpp).
  UnitEstimate estimate(int64_t m, int64_t n, linalg::BackendKind kind) const override;

  const CalderaParams& params() const noexcept { return params_; }

 private:
  CalderaParams params_;
  std::string name_;
};

}  // namespace caldera::algo
