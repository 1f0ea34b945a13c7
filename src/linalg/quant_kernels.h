// Backend facet with the quantization kernels (Hadamard transforms, E8P lattice search, LDLQ
// panels, scalar quantizers). The algorithms that drive them live in src/quant/; this facet only
// holds the data-parallel primitives that have a CPU and a CUDA implementation.
// Conventions as in linalg/backend.h.
#pragma once

#include "linalg/backend.h"

namespace caldera::linalg {

class QuantKernels {
 public:
  virtual ~QuantKernels() = default;
};

}  // namespace caldera::linalg
