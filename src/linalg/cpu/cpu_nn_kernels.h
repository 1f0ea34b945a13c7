// CPU implementation of the neural-network facet (linalg/nn_kernels.h).
#pragma once

#include "linalg/nn_kernels.h"

namespace caldera::linalg {

class CpuBackend;

class CpuNnKernels final : public NnKernels {
 public:
  explicit CpuNnKernels(CpuBackend& backend) : backend_(backend) {}

 private:
  [[maybe_unused]] CpuBackend& backend_;
};

}  // namespace caldera::linalg
