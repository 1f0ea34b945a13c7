// The update pass after phase 2 for methods with Method::has_update_pass() (SVD-LLM's parameter
// update, asvd-svdllm spec §9.1 `whitening_local_update`): the layers are walked in order on the
// calibration activations of the model whose earlier layers are already compressed and updated.
// For layer l:
//   1. the ORIGINAL layer l runs on those activations (on a copy) while the taps collect its four
//      inputs' statistics G' (as phase 1 does), reduced over ranks into
//      <workdir>/update/hessians/layer_NNN.h5;
//   2. each of the layer's seven units (tasks/<unit>.h5 from phase 2) is refitted by
//      Method::update against its input's G' and published as update/tasks/<unit>.h5 (units
//      round-robin over ranks);
//   3. the activations move on through the updated compressed layer l.
// Export then reads update/tasks/ (pipeline/export.h).
//
// The pass is HessianPhase with HessianPhaseOptions::propagate / before_propagate over
// <workdir>/update, so it inherits phase 1's properties: exact sums, bit-identical files for any
// world size, resume from verified files (a verified layer file is not recollected, a verified
// updated unit is not refitted; the forward pass is replayed up to the first missing layer, or
// continues from an activation snapshot in update/state/), stops at layer boundaries.
#pragma once

#include <memory>

#include "algo/method.h"
#include "comm/communicator.h"
#include "io/hessian_file.h"
#include "io/hf_model.h"
#include "linalg/backend.h"
#include "model/weight_source.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/workdir.h"

namespace caldera::pipeline {

/// The model whose linears are the updated units of update/tasks/ (rebuilt with
/// Method::reconstruct) and whose other tensors are the original's. load_layer(l) needs every unit
/// of layer l finished (throws Error naming the unit otherwise).
class UpdatedModelSource final : public model::WeightSource {
 public:
  UpdatedModelSource(const HfWeightSource& original, const Workdir& workdir, const algo::Method& method,
                     uint64_t seed, linalg::Backend& backend);
  const model::LlamaConfig& config() const override { return original_.config(); }
  DType storage_dtype() const override { return original_.storage_dtype(); }
  model::LayerHostWeights load_layer(int64_t layer) const override;
  HostMatrix<float> load_embedding() const override { return original_.load_embedding(); }
  HostMatrix<float> load_final_norm() const override { return original_.load_final_norm(); }
  HostMatrix<float> load_lm_head() const override { return original_.load_lm_head(); }

 private:
  const HfWeightSource& original_;
  const Workdir& workdir_;
  const algo::Method& method_;
  uint64_t seed_;
  linalg::Backend& backend_;
};

/// Step 2 for one layer (collective: every rank calls it for the same layer; barriers before and
/// after). Returns the number of units refitted on this rank (verified ones are skipped).
/// `meta`: what the layer's update/hessians file must have been computed from (its layer field is
/// ignored). Throws Error when a phase-2 unit of the layer is missing or does not verify, IoError /
/// ConfigError for a statistics file that does not match.
int64_t refit_layer_units(comm::Communicator& world, linalg::Backend& backend, const io::HfModel& model,
                          const Workdir& workdir, const algo::Method& method, uint64_t seed, int64_t layer,
                          const io::HessianFileMeta& meta);

}  // namespace caldera::pipeline
