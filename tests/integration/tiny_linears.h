// Every linear matrix of the bundled minillama-tiny with real phase-1 statistics, for the
// per-matrix method tests (test_caldera_tiny, test_spqr_tiny): the model's forward pass with
// Hessian taps over the first `n_seqs` calibration sequences, layer by layer on the unmodified
// model, as phase 1 computes them.
#pragma once

#include <cstdint>
#include <string>

#include "algo/method.h"
#include "core/rng.h"
#include "model/forward.h"
#include "pipeline/hf_weight_source.h"
#include "test_util.h"

namespace caldera::test {

struct TinyLinear {
  algo::UnitId unit;
  const HostMatrix<float>& w;
  const model::HessianTaps& taps;  ///< the layer's taps; read the input of `input`
  model::HessianInput input;
  Rng rng;  ///< the unit's stream: Rng(0).stream({layer, kind})
};

/// Calls visit(const TinyLinear&) for the 7 linears of every layer; returns the number visited.
template <class Visit>
int for_each_tiny_linear(linalg::Backend& be, int64_t n_seqs, int64_t seq_len, Visit&& visit) {
  const pipeline::HfWeightSource source(tiny_model_dir());
  const auto& cfg = source.config();
  const auto ids = model::checked_token_ids(cfg, read_calib_tokens(n_seqs, seq_len), seq_len);
  auto hidden = model::embed_sequences(be, source, ids);
  model::ForwardOptions fwd;
  fwd.seq_len = seq_len;
  int visited = 0;
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    const auto host = source.load_layer(layer);
    const auto weights = model::LayerWeights::upload(be, cfg, layer, host, source.storage_dtype());
    model::HessianTaps taps(be, cfg);
    model::forward_layer_batched(be, cfg, weights, hidden.view(), fwd, &taps);
    for (const model::LinearKind kind : model::kAllLinearKinds) {
      const algo::UnitId unit{static_cast<int>(layer), std::string(model::hf_module_name(kind)), static_cast<int>(kind)};
      visit(TinyLinear{unit, host[kind], taps, model::hessian_input(kind),
                       Rng(0).stream({static_cast<uint64_t>(layer), static_cast<uint64_t>(kind)})});
      ++visited;
    }
  }
  return visited;
}

/// Layers × 7 of minillama-tiny (what for_each_tiny_linear visits).
inline int tiny_linear_count() {
  return 7 * static_cast<int>(pipeline::HfWeightSource(tiny_model_dir()).config().num_hidden_layers);
}

}  // namespace caldera::test
