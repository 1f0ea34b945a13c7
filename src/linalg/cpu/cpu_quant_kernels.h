// CPU implementation of the quantization facet (linalg/quant_kernels.h): OpenMP over rows, the
// shared host/device codecs of core/e8p_tables.h for the lattice and scalar grids. The reference
// the CUDA facet is compared with.
#pragma once

#include "linalg/quant_kernels.h"

namespace caldera::linalg {

class CpuBackend;

class CpuQuantKernels final : public QuantKernels {
 public:
  explicit CpuQuantKernels(CpuBackend& backend) : backend_(backend) {}

  void hadamard_rows(MatrixView<float> x, const HadamardFactor& f, Op op, MatrixView<const float> signs_in,
                     MatrixView<const float> signs_out) override;
  void lattice_quantize(MatrixView<const float> x, LatticeCodebook cb, float residual_scale, MatrixView<float> xhat,
                        MatrixView<uint32_t> codes) override;
  void lattice_decode(MatrixView<const uint32_t> codes, LatticeCodebook cb, float residual_scale,
                      MatrixView<float> xhat) override;
  void ldlq_panel_lattice(const LdlqPanelArgs& args, LatticeCodebook cb, float residual_scale,
                          MatrixView<uint32_t> codes) override;
  void ldlq_panel_scalar(const LdlqPanelArgs& args, const ScalarGrid& grid, MatrixView<uint8_t> codes) override;
  void scalar_fit(MatrixView<const float> x, const ScalarFitSpec& spec, MatrixView<float> scale,
                  MatrixView<float> zero) override;
  void scalar_quantize(MatrixView<const float> x, const ScalarGrid& grid, MatrixView<uint8_t> codes,
                       MatrixView<float> xhat) override;
  void scalar_dequantize(MatrixView<const uint8_t> codes, const ScalarGrid& grid, MatrixView<float> xhat) override;

 private:
  [[maybe_unused]] CpuBackend& backend_;
};

}  // namespace caldera::linalg
