// CUDA implementation of the quantization facet (linalg/quant_kernels.h); kernels in
// kernels/{hadamard,lattice,ldlq}, reached through their C7 launchers with the backend's stream.
#pragma once

#include "linalg/quant_kernels.h"

namespace caldera::linalg {

class CudaBackend;

class CudaQuantKernels final : public QuantKernels {
 public:
  explicit CudaQuantKernels(CudaBackend& backend) : backend_(backend) {}

 private:
  [[maybe_unused]] CudaBackend& backend_;
};

}  // namespace caldera::linalg
