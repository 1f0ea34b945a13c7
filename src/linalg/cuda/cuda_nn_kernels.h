// CUDA implementation of the neural-network facet (linalg/nn_kernels.h); kernels in kernels/nn,
// reached through their C7 launchers with the backend's stream.
#pragma once

#include "linalg/nn_kernels.h"

namespace caldera::linalg {

class CudaBackend;

class CudaNnKernels final : public NnKernels {
 public:
  explicit CudaNnKernels(CudaBackend& backend) : backend_(backend) {}

 private:
  [[maybe_unused]] CudaBackend& backend_;
};

}  // namespace caldera::linalg
