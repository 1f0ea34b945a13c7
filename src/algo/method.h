// The compression-method interface (DESIGN §2 phase 2): every method (CALDERA, QuIP#, RTN, GPTQ,
// SpQR, ASVD, SVD-LLM, plain SVD) compresses one linear weight matrix given the calibration
// statistics of its input, and can rebuild the dense matrix from what it stored.
//
// The pipeline owns scheduling, files and resume; a method owns the mathematics. Methods are pure
// functions of (W, statistics, parameters, RNG stream): the same inputs give bit-identical tensors
// on any rank, so results never depend on the world size (DESIGN §3).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "algo/estimate.h"
#include "core/matrix.h"
#include "core/rng.h"
#include "core/tensor_map.h"
#include "linalg/backend.h"

namespace caldera::algo {

/// Calibration statistics of one linear layer's input (phase 1, spec §6.2), unnormalised so that
/// partial sums merge exactly.
struct InputStats {
  HostMatrix<double> sum_xxt;   ///< n×n, Σ x xᵀ over all calibration tokens (full symmetric)
  std::vector<double> sum_x;    ///< n, Σ x
  std::vector<double> sum_abs_x;  ///< n, Σ |x| (empty when not collected; ASVD's abs-mean scaling)
  std::vector<double> max_abs_x;  ///< n, max |x| (empty when not collected; ASVD's abs-max scaling)
  int64_t count = 0;            ///< number of tokens
  int64_t n_sequences = 0;      ///< number of calibration sequences
};

/// One unit of work: a linear matrix of a decoder layer.
struct UnitId {
  int layer = 0;
  std::string matrix;  ///< HF module name within the layer, e.g. "self_attn.q_proj", "mlp.down_proj"
  /// Stable stream index of `matrix` (q=0, k=1, v=2, o=3, gate=4, up=5, down=6) for RNG keys.
  int matrix_index = 0;
  /// "L007.self_attn.q_proj": the task file stem and log name.
  std::string name() const;
};

/// Mid-unit checkpoints (DESIGN §3): a method with long inner loops saves its state at safe points
/// (e.g. after every outer iteration) and resumes from the last saved state bit-identically.
class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  /// The last saved state of this unit, if any (already verified by the store).
  virtual std::optional<TensorMap> load() = 0;
  /// Saves `state` atomically, replacing the previous one.
  virtual void save(const TensorMap& state) = 0;
};

/// Thrown by a method when `stop_requested` turned true at a safe point after a checkpoint was
/// saved: the pipeline ends the run with exit code 75 and the next run resumes.
class StopRequested : public Error {
 public:
  StopRequested() : Error("stop requested at a safe point") {}
};

struct MethodContext {
  linalg::Backend& backend;
  /// Stream keyed by (seed, layer, matrix); methods derive sub-streams with RngPurpose.
  Rng rng;
  UnitId unit;
  /// May be null (no mid-unit checkpoints).
  CheckpointStore* checkpoint = nullptr;
  /// Polled at safe points; when it returns true the method saves and throws StopRequested.
  std::function<bool()> stop_requested;
  /// Progress within the unit in [0, 1], for ETAs (may be empty).
  std::function<void(double fraction)> progress;
};

/// Quality and size of one compressed matrix.
struct UnitMetrics {
  /// Spec §1.3: sqrt(tr(ΔHΔᵀ)/tr(WHWᵀ)) with the processed Hessian H of spec §6.5.
  double rel_error = 0.0;
  /// The method's own per-step error history (e.g. CALDERA's REL_ERR after every sub-step).
  std::vector<double> error_history;
  /// Storage bits of the compressed matrix by the method's accounting (spec §7.3 for CALDERA);
  /// average bits per weight = bits / (m·n).
  double bits = 0.0;
  /// Parameters kept (low-rank methods: r·(m+n)); 0 when not meaningful.
  int64_t params = 0;
  /// Extra named figures (outlier rate, rank, iterations, damping used, ...).
  std::vector<std::pair<std::string, double>> extra;
};

struct CompressedUnit {
  /// Everything needed to rebuild the matrix and to export it: codes, scales, factors, signs.
  TensorMap tensors;
  UnitMetrics metrics;
};

/// A matrix written as base + lora_b · lora_a in the original basis (for PEFT LoRA export).
struct LowRankSplit {
  HostMatrix<float> base;    ///< m×n, everything but the low-rank term
  HostMatrix<float> lora_a;  ///< r×n (PEFT's lora_A)
  HostMatrix<float> lora_b;  ///< m×r (PEFT's lora_B)
};

class Method {
 public:
  virtual ~Method() = default;
  /// "caldera", "quip", "rtn", "gptq", "spqr", "asvd", "svdllm", "svd".
  virtual std::string name() const = 0;
  /// Parameters as `key=value` pairs, recorded in run.json and the output's quantization_config.
  virtual std::vector<std::pair<std::string, std::string>> parameters() const = 0;
  /// Compresses w (m×n host fp32, the original weight) for an input with statistics `stats`.
  virtual CompressedUnit compress(const MethodContext& context, MatrixView<const float> w,
                                  const InputStats& stats) const = 0;
  /// Rebuilds the dense m×n matrix (original basis) from `tensors` alone: the method's parameters
  /// must not be needed (a compressed model is read back with the method's default parameters).
  virtual HostMatrix<float> reconstruct(linalg::Backend& backend, const TensorMap& tensors) const = 0;
  /// For methods with a low-rank term (CALDERA: Q + L·R with the Hadamard/sign transforms folded
  /// into the factors): the split of reconstruct(tensors). std::nullopt for the others.
  virtual std::optional<LowRankSplit> split_low_rank(linalg::Backend& backend, const TensorMap& tensors) const {
    (void)backend;
    (void)tensors;
    return std::nullopt;
  }
  /// True for a method with a sequential update pass after phase 2 (SVD-LLM's parameter update,
  /// asvd-svdllm spec §9.1). The pipeline (pipeline/update_pass.h) then walks the layers in order,
  /// collects every layer's input statistics on the model whose earlier layers are compressed and
  /// updated, and calls update() for each unit of the layer; the updated units are what is exported.
  virtual bool has_update_pass() const { return false; }
  /// `compressed` (what compress() returned for the original weight w, m×n host fp32) refitted to
  /// inputs with statistics `inputs`. Called only when has_update_pass(); this default throws Error.
  virtual CompressedUnit update(linalg::Backend& backend, const UnitId& unit, MatrixView<const float> w,
                                const CompressedUnit& compressed, const InputStats& inputs) const;
  /// Relative cost of compressing an m×n matrix (arbitrary units, comparable across units of the
  /// same method): used to balance ranks, largest first.
  virtual double cost_estimate(int64_t m, int64_t n) const = 0;
  /// Memory and work of compress() for an m×n matrix on a backend of `kind`, for `caldera-dist
  /// plan` (algo/estimate.h: a replay of the method's allocations, and operation counts). Methods
  /// override it; this default (algo/estimate.cpp) is a generic guess — W, its transform and four
  /// more m×n working matrices plus three n×n Hessian copies on the backend, the fp64 and fp32
  /// Hessians on the host, 20·m·n² flops — with `modeled` false, which plan reports.
  virtual UnitEstimate estimate(int64_t m, int64_t n, linalg::BackendKind kind) const;
};

}  // namespace caldera::algo
