#include "pipeline/perplexity.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"

namespace caldera::pipeline {

PerplexityResult evaluate_perplexity(linalg::Backend& backend, comm::Communicator& world,
                                     const model::WeightSource& source, std::span<const uint32_t> local_tokens,
                                     const PerplexityOptions& options) {
  options.forward.validate();
  const model::LlamaConfig& config = source.config();
  const int64_t seq_len = options.forward.seq_len;
  config.check_sequence_length(seq_len);
  CALDERA_CHECK_AS(ConfigError, seq_len >= 2, "--seq-len must be >= 2 to predict any token, found ", seq_len);
  const std::vector<int32_t> ids = model::checked_token_ids(config, local_tokens, seq_len);
  const int64_t local_seqs = static_cast<int64_t>(ids.size()) / seq_len;

  Stopwatch watch;
  double local_nll_sum = 0;
  std::vector<double> token_nll;
  if (local_seqs > 0) {
    auto hidden = model::embed_sequences(backend, source, ids);
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
      const auto weights = model::LayerWeights::load(backend, source, layer);
      model::forward_layer_batched(backend, config, weights, hidden.view(), options.forward, nullptr);
      log_debug("eval: layer ", layer, " done (", watch.elapsed_s(), " s)");
    }
    token_nll = model::final_token_nll(backend, source, hidden.cview(), ids, options.forward);
    for (double v : token_nll) local_nll_sum += v;  // the last position of each sequence holds 0
  }

  PerplexityResult r;
  r.seqs = world.allreduce_value<int64_t>(local_seqs, comm::ReduceOp::kSum);
  r.tokens = r.seqs * (seq_len - 1);
  const double nll_sum = world.allreduce_value(local_nll_sum, comm::ReduceOp::kSum);
  CALDERA_CHECK_AS(ConfigError, r.seqs > 0, "eval: no sequences to evaluate");
  r.nll = nll_sum / static_cast<double>(r.tokens);
  CALDERA_CHECK_AS(NumericError, std::isfinite(r.nll), "eval: mean NLL is not finite (", r.nll,
                   "): the model or its weights produce non-finite logits");
  r.ppl = std::exp(r.nll);
  if (options.first_sequence_nll == FirstSequenceNll::kKeep && world.rank() == 0 && local_seqs > 0)
    r.first_sequence_token_nll.assign(token_nll.begin(), token_nll.begin() + (seq_len - 1));
  log_info("eval: ", r.seqs, " sequences x ", seq_len, " tokens, mean NLL ", r.nll, ", ppl ", r.ppl, " (",
           watch.elapsed_s(), " s on rank ", world.rank(), ")");
  return r;
}

}  // namespace caldera::pipeline
