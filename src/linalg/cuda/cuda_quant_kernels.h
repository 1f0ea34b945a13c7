// CUDA implementation of the quantization facet (linalg/quant_kernels.h); kernels in
// kernels/{hadamard,lattice,ldlq}, reached through their C7 launchers on the backend's stream.
// Lattice encoding and the scalar grid give the CPU facet's results bit for bit; the Hadamard
// transform follows the CPU's arithmetic order too; LDLQ panels differ only by the summation order
// of the in-panel feedback.
#pragma once

#include "linalg/quant_kernels.h"

namespace caldera::linalg {

class CudaBackend;

class CudaQuantKernels final : public QuantKernels {
 public:
  explicit CudaQuantKernels(CudaBackend& backend) : backend_(backend) {}

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
  CudaBackend& backend_;
};

}  // namespace caldera::linalg
