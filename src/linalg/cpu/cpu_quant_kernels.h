// CPU implementation of the quantization facet (linalg/quant_kernels.h).
#pragma once

#include "linalg/quant_kernels.h"

namespace caldera::linalg {

class CpuBackend;

class CpuQuantKernels final : public QuantKernels {
 public:
  explicit CpuQuantKernels(CpuBackend& backend) : backend_(backend) {}

 private:
  [[maybe_unused]] CpuBackend& backend_;
};

}  // namespace caldera::linalg
