// Perplexity of a Llama-family model on whole token sequences (what `caldera-dist eval` runs), as
// /work/shared/models/README.md defines it: every sequence is fed on its own (positions
// 0..seq_len−1, no cross-sequence context), the NLL is averaged over the seq_len − 1 next-token
// predictions of every sequence, ppl = exp(mean NLL).
//
// Data-parallel: each rank forwards its own slice of the sequences (comm::partition_range) layer
// by layer; the NLL sums are added over ranks. Only summation order depends on the world size.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "comm/communicator.h"
#include "linalg/backend.h"
#include "model/forward.h"
#include "model/weight_source.h"

namespace caldera::pipeline {

/// Whether the per-token NLLs of global sequence 0 are returned (parity tests, golden checks).
enum class FirstSequenceNll : bool { kDrop, kKeep };

struct PerplexityOptions {
  model::ForwardOptions forward;
  FirstSequenceNll first_sequence_nll = FirstSequenceNll::kDrop;
};

struct PerplexityResult {
  double ppl = 0;         ///< exp(nll)
  double nll = 0;         ///< mean NLL per predicted token (nats)
  int64_t tokens = 0;     ///< predicted tokens over all ranks: seqs · (seq_len − 1)
  int64_t seqs = 0;       ///< sequences over all ranks
  /// seq_len − 1 NLLs of global sequence 0, on rank 0 when kKeep (empty otherwise).
  std::vector<double> first_sequence_token_nll;
};

/// Evaluates `source` on this rank's sequences `local_tokens` (whole sequences of
/// options.forward.seq_len tokens, this rank's slice in global order; rank 0's slice must start with
/// global sequence 0 when its NLLs are kept). Called by every rank of `world` (one allreduce at the
/// end; a rank with no sequences still participates). Returns the global result on every rank.
/// Throws ConfigError for invalid options or a seq_len the model cannot run (sliding window),
/// Error for token ids outside the vocabulary (naming the position), NumericError when the mean NLL
/// is not finite.
PerplexityResult evaluate_perplexity(linalg::Backend& backend, comm::Communicator& world,
                                     const model::WeightSource& source, std::span<const uint32_t> local_tokens,
                                     const PerplexityOptions& options);

}  // namespace caldera::pipeline
