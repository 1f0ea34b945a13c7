// Phase 1 (DESIGN §2, caldera-quipsharp spec §6): calibration Hessians of the ORIGINAL model, layer
// by layer. Every rank embeds its slice of the calibration sequences, then for each decoder layer
// forwards the slice through that layer (in micro-batches) while the Hessian taps accumulate, for
// the four linear inputs (qkv, o, up, down; spec §6.1), S = Σ x xᵀ and Σ x in fp64 and the token
// count (spec §6.2: every position of every full sequence, BOS included). The layer's outputs
// become the next layer's inputs. The sums are reduced over ranks to the writer rank (MPI reduce of
// fp64 host arrays with the lower triangle packed, or NCCL on device buffers where usable:
// pipeline/hessian_reduce.h), which writes
// <workdir>/hessians/layer_NNN.h5 atomically (io/hessian_file.h).
//
// Results do not depend on the world size: the taps accumulate each sequence's sums exactly in fixed
// point (model::HessianTaps) and the reduction over ranks adds exact integer chunks, so 1, 2 or 3
// ranks write bit-identical files (DESIGN §3).
//
// Resume: a layer whose file already exists and verifies (format, checksums, meta equal to this
// run's model fingerprint, calibration hash, seq_len and layer) is not recomputed; its forward
// pass still runs (without taps) while a later layer still needs computing, since the activations
// are the state. Activation snapshots for mid-phase resume come with the pipeline issue; the loop
// is already one function per layer over that state (HessianPhase::run_layer).
//
// The same loop serves the SVD-LLM update pass (pipeline/update_pass.h): with
// HessianPhaseOptions::propagate the taps still see the original layer, but the activations move on
// through another model (the compressed, updated one), and before_propagate runs in between.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "io/hessian_file.h"
#include "linalg/backend.h"
#include "model/forward.h"
#include "model/weight_source.h"
#include "pipeline/hessian_reduce.h"

namespace caldera::pipeline {

struct HessianPhaseOptions {
  model::ForwardOptions forward;
  /// The run's work directory: layer files go to io::hessian_file_path(workdir, layer)
  /// (<workdir>/hessians/layer_NNN.h5); the writer rank creates the directory.
  std::filesystem::path workdir;
  /// Recorded in every file and compared on resume (io::HessianFileMeta; layer is filled per file).
  std::string model_fingerprint;
  std::string calibration_sha256;
  /// Rank that receives the reduced sums and writes the files.
  int writer_rank = 0;
  /// Log prefix of the per-layer lines.
  std::string name = "hessians";
  /// When set, the activations entering layer l + 1 come from this source's layer l, while the
  /// taps still see `source`'s layer l (on a copy of the activations, model::collect_layer_taps):
  /// the SVD-LLM update pass (pipeline/update_pass.h) collects the original layers' input
  /// statistics on the compressed prefix. Its load_layer(l) is called after before_propagate(l).
  const model::WeightSource* propagate = nullptr;
  /// When set, called on every rank for every layer in order once the layer's file is written or
  /// verified (kSkip included) and before the activations move on (collective).
  std::function<void(int64_t layer)> before_propagate;
  /// Throws ConfigError naming the option when a value is invalid.
  void validate() const;
};

/// What happens to a layer in this run.
enum class LayerAction : uint8_t {
  kCollect,      ///< forward with taps, reduce, write the file
  kForwardOnly,  ///< file already verified: forward only, to produce the next layer's inputs
  kSkip,         ///< file verified and no later layer needs the activations
};

struct HessianPhaseReport {
  int64_t layers_collected = 0;
  int64_t layers_reused = 0;   ///< verified files kept from an earlier run
  int64_t sequences = 0;       ///< over all ranks
  int64_t tokens = 0;          ///< rows accumulated per input per layer, over all ranks
  double seconds = 0;          ///< wall time on this rank
  std::string reducer;         ///< HessianReducer::name() of the reduction used
  std::vector<std::filesystem::path> files;  ///< every layer's file, in layer order
};

/// One phase-1 run over this rank's slice. Collective: every rank of `world` constructs it and
/// calls the same member functions in the same order.
class HessianPhase {
 public:
  /// local_tokens: this rank's whole sequences (options.forward.seq_len each), validated against the
  /// vocabulary (Error naming the position). Throws ConfigError for invalid options.
  HessianPhase(linalg::Backend& backend, comm::Communicator& world, const model::WeightSource& source,
               std::span<const uint32_t> local_tokens, HessianPhaseOptions options);

  /// Decides every layer's action from the files on disk (checked by the writer rank, agreed by
  /// all). A file that exists but does not verify is recomputed (logged as a warning).
  std::vector<LayerAction> plan() const;
  /// Runs `action` for `layer` on the activation state; layers must come in increasing order
  /// starting at 0 (the first call embeds the tokens). kSkip does nothing.
  void run_layer(int64_t layer, LayerAction action);
  /// plan() then run_layer for every layer; returns the report.
  HessianPhaseReport run();

  /// The activation state (this rank's activations entering layer next_layer(), backend memory),
  /// for snapshots (pipeline/activation_snapshot.h). Empty before the first run_layer.
  MatrixView<const float> activations() const { return hidden_.cview(); }
  int64_t next_layer() const noexcept { return next_layer_; }
  int64_t local_sequences() const noexcept { return local_seqs_; }
  /// Continues from a snapshot: `activations` (local tokens × hidden) enter layer `next_layer`.
  void restore(int64_t next_layer, const HostMatrix<float>& activations);
  /// The report so far (counts and files of the layers run).
  const HessianPhaseReport& report() const noexcept { return report_; }

 private:
  void ensure_embedded();
  void reduce_and_write(int64_t layer);
  HostMatrix<double> reduce_fixed_symmetric(model::HessianInput input, MatrixView<const Fixed128> sum);
  HostMatrix<double> reduce_fixed_vector(MatrixView<const Fixed128> v);
  io::HessianFileMeta meta(int64_t layer) const;

  linalg::Backend& backend_;
  comm::Communicator& world_;
  const model::WeightSource& source_;
  HessianPhaseOptions options_;
  std::vector<int32_t> ids_;
  int64_t local_seqs_ = 0;
  int64_t global_seqs_ = 0;
  int64_t next_layer_ = 0;
  bool embedded_ = false;
  linalg::Matrix<float> hidden_;  ///< the state: this rank's activations entering layer next_layer_
  model::HessianTaps taps_;
  std::unique_ptr<HessianReducer> reducer_;
  HessianPhaseReport report_;
};

/// Convenience: HessianPhase(...).run().
HessianPhaseReport run_hessian_phase(linalg::Backend& backend, comm::Communicator& world,
                                     const model::WeightSource& source, std::span<const uint32_t> local_tokens,
                                     const HessianPhaseOptions& options);

}  // namespace caldera::pipeline
