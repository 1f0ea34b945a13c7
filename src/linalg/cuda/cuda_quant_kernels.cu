// CUDA quantization facet: argument checks shared with the CPU facet (quant_checks), then one C7
// launcher call per operation, checked once with CALDERA_CUDA_CHECK.
#include "linalg/cuda/cuda_quant_kernels.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/hadamard.h"
#include "kernels/lattice.h"
#include "kernels/ldlq.h"
#include "linalg/cuda/cuda_backend.h"
#include "linalg/cuda/cuda_check.h"

namespace caldera::linalg {

namespace {

/// Checks, allocates the workspace and launches; `op` names the facet operation in errors.
template <class Args>
void run(CudaBackend& be, const Args& args, bool (*can)(const Args&) noexcept, std::size_t (*ws)(const Args&) noexcept,
         cudaError_t (*launch)(const Args&, void*, cudaStream_t) noexcept, const char* op) {
  be.make_current();
  CALDERA_CHECK(can(args), op, ": the CUDA kernel rejects these arguments (shape, ld, parameters, or a row too "
                "large for shared memory)");
  DeviceBuffer<std::byte> workspace(be, ws(args), op);
  CALDERA_CUDA_CHECK(launch(args, workspace.data(), be.stream()));
}

template <class Args>
void run_lattice(CudaBackend& be, const Args& args, const char* op) {
  run<Args>(be, args, &kernels::lattice_can_implement, &kernels::lattice_workspace_bytes, &kernels::lattice_launch, op);
}

kernels::LdlqPanelArgs panel_args(const LdlqPanelArgs& a) {
  kernels::LdlqPanelArgs k;
  k.base = a.base;
  k.acc = a.acc;
  k.mix = a.mix;
  k.block_inv = a.block_inv;
  k.what = a.what;
  k.delta = a.delta;
  return k;
}

}  // namespace

void CudaQuantKernels::hadamard_rows(MatrixView<float> x, const HadamardFactor& f, Op op,
                                     MatrixView<const float> signs_in, MatrixView<const float> signs_out) {
  quant_checks::hadamard(x, f, signs_in, signs_out);
  // G = H_K (hadU) or H_Kᵀ (hadUt) as sign bits, k rows of ⌈k/32⌉ words.
  const int64_t k = f.k, words = kernels::hadamard_g_words(f.k);
  DeviceBuffer<uint32_t> g;
  if (k > 1) {
    std::vector<uint32_t> bits(static_cast<size_t>(k * words), 0u);
    for (int64_t r = 0; r < k; ++r)
      for (int64_t c = 0; c < k; ++c) {
        const int8_t v = op == Op::kNoTrans ? f.hk[r * k + c] : f.hk[c * k + r];
        if (v < 0) bits[r * words + c / 32] |= 1u << (c % 32);
      }
    g = DeviceBuffer<uint32_t>(backend_, bits.size(), "hadamard G bits");
    backend_.upload(MatrixView<const uint32_t>(bits.data(), 1, static_cast<int64_t>(bits.size())),
                    g.view(1, static_cast<int64_t>(bits.size())));
  }
  kernels::HadamardArgs a;
  a.x = x;
  a.p = f.p;
  a.k = f.k;
  a.g_neg = g.data();
  a.signs_in = signs_in.data;
  a.signs_out = signs_out.data;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(f.n)));
  run<kernels::HadamardArgs>(backend_, a, &kernels::hadamard_can_implement, &kernels::hadamard_workspace_bytes,
                             &kernels::hadamard_launch, "hadamard_rows");
}

void CudaQuantKernels::lattice_quantize(MatrixView<const float> x, LatticeCodebook cb, float residual_scale,
                                        MatrixView<float> xhat, MatrixView<uint32_t> codes) {
  quant_checks::lattice(x, codes, cb, residual_scale, "lattice_quantize");
  if (xhat.data != nullptr)
    CALDERA_CHECK(same_shape(x, xhat), "lattice_quantize: xhat must match x (", x.rows, "x", x.cols, ")");
  run_lattice(backend_, kernels::LatticeEncodeArgs{x, xhat, codes, cb, residual_scale}, "lattice_quantize");
}

void CudaQuantKernels::lattice_decode(MatrixView<const uint32_t> codes, LatticeCodebook cb, float residual_scale,
                                      MatrixView<float> xhat) {
  quant_checks::lattice(xhat, codes, cb, residual_scale, "lattice_decode");
  run_lattice(backend_, kernels::LatticeDecodeArgs{codes, xhat, cb, residual_scale}, "lattice_decode");
}

void CudaQuantKernels::ldlq_panel_lattice(const LdlqPanelArgs& args, LatticeCodebook cb, float residual_scale,
                                          MatrixView<uint32_t> codes) {
  quant_checks::ldlq_panel(args, codes.cols, codes.rows);
  CALDERA_CHECK(codes.cols * 8 == args.base.cols, "ldlq_panel_lattice: codes must be ", args.base.rows, "x",
                args.base.cols / 8, ", got ", codes.rows, "x", codes.cols);
  kernels::LdlqPanelArgs k = panel_args(args);
  k.rounding = kernels::LdlqRounding::kLattice;
  k.codebook = cb;
  k.residual_scale = residual_scale;
  k.lattice_codes = codes;
  run<kernels::LdlqPanelArgs>(backend_, k, &kernels::ldlq_can_implement, &kernels::ldlq_workspace_bytes,
                              &kernels::ldlq_launch, "ldlq_panel_lattice");
}

void CudaQuantKernels::ldlq_panel_scalar(const LdlqPanelArgs& args, const ScalarGrid& grid, MatrixView<uint8_t> codes) {
  quant_checks::ldlq_panel(args, codes.cols, codes.rows);
  CALDERA_CHECK(same_shape(codes, args.base), "ldlq_panel_scalar: codes must be ", args.base.rows, "x",
                args.base.cols);
  quant_checks::scalar_grid(grid, args.base.rows, args.base.cols, "ldlq_panel_scalar");
  kernels::LdlqPanelArgs k = panel_args(args);
  k.rounding = kernels::LdlqRounding::kScalar;
  k.scale = grid.scale;
  k.zero = grid.zero;
  k.bits = grid.bits;
  k.group_size = grid.group_size;
  k.col_offset = grid.col_offset;
  k.scalar_codes = codes;
  run<kernels::LdlqPanelArgs>(backend_, k, &kernels::ldlq_can_implement, &kernels::ldlq_workspace_bytes,
                              &kernels::ldlq_launch, "ldlq_panel_scalar");
}

void CudaQuantKernels::scalar_fit(MatrixView<const float> x, const ScalarFitSpec& spec, MatrixView<float> scale,
                                  MatrixView<float> zero) {
  CALDERA_CHECK(spec.bits >= 1 && spec.bits <= 8 && spec.group_size > 0, "scalar_fit: bits must be 1..8 (got ",
                spec.bits, ") and group_size > 0 (got ", spec.group_size, ")");
  const int64_t ng = (x.cols + spec.group_size - 1) / spec.group_size;
  CALDERA_CHECK(same_shape(scale, zero) && scale.rows == x.rows && scale.cols == ng, "scalar_fit: scale/zero must be ",
                x.rows, "x", ng, ", got ", scale.rows, "x", scale.cols, " and ", zero.rows, "x", zero.cols);
  run_lattice(backend_,
              kernels::ScalarFitArgs{x, scale, zero, spec.bits, spec.group_size, spec.symmetry, spec.range,
                                     spec.zero_point},
              "scalar_fit");
}

void CudaQuantKernels::scalar_quantize(MatrixView<const float> x, const ScalarGrid& grid, MatrixView<uint8_t> codes,
                                       MatrixView<float> xhat) {
  quant_checks::scalar_grid(grid, x.rows, x.cols, "scalar_quantize");
  CALDERA_CHECK(codes.data == nullptr || same_shape(codes, x), "scalar_quantize: codes must be ", x.rows, "x", x.cols);
  CALDERA_CHECK(xhat.data == nullptr || same_shape(xhat, x), "scalar_quantize: xhat must be ", x.rows, "x", x.cols);
  kernels::ScalarGridArgs a;
  a.direction = kernels::ScalarDirection::kQuantize;
  a.x = x;
  a.codes_out = codes;
  a.xhat = xhat;
  a.scale = grid.scale;
  a.zero = grid.zero;
  a.bits = grid.bits;
  a.group_size = grid.group_size;
  a.col_offset = grid.col_offset;
  run_lattice(backend_, a, "scalar_quantize");
}

void CudaQuantKernels::scalar_dequantize(MatrixView<const uint8_t> codes, const ScalarGrid& grid,
                                         MatrixView<float> xhat) {
  quant_checks::scalar_grid(grid, codes.rows, codes.cols, "scalar_dequantize");
  CALDERA_CHECK(same_shape(codes, xhat), "scalar_dequantize: xhat must be ", codes.rows, "x", codes.cols);
  kernels::ScalarGridArgs a;
  a.direction = kernels::ScalarDirection::kDequantize;
  a.codes_in = codes;
  a.xhat = xhat;
  a.scale = grid.scale;
  a.zero = grid.zero;
  a.bits = grid.bits;
  a.group_size = grid.group_size;
  a.col_offset = grid.col_offset;
  run_lattice(backend_, a, "scalar_dequantize");
}

}  // namespace caldera::linalg
