// Backend facet with the neural-network kernels of the Llama forward pass (RMSNorm, RoPE,
// causal grouped-query attention, SwiGLU, embedding lookup, log-softmax NLL).
// Conventions as in linalg/backend.h.
#pragma once

#include "linalg/backend.h"

namespace caldera::linalg {

class NnKernels {
 public:
  virtual ~NnKernels() = default;
};

}  // namespace caldera::linalg
