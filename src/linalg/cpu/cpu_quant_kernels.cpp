// CPU quantization facet. Every loop is parallel over independent rows (or 8-vectors) with OpenMP;
// each output is computed by one thread in a fixed order, so results never depend on the thread
// count. Per-element arithmetic follows the definitions in linalg/quant_kernels.h and the shared
// codecs of core/e8p_tables.h (the CUDA facet follows the same ones).
#include "linalg/cpu/cpu_quant_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/e8p_tables.h"
#include "linalg/cpu/cpu_backend.h"

namespace caldera::linalg {

namespace {

constexpr int64_t kParallelMinElems = 1 << 14;

/// e8p::e8p_nearest with the same arithmetic, reorganised for instruction-level parallelism: the
/// keys of 8 patterns are accumulated side by side (each key still sums its 8 terms in coordinate
/// order, so every key has exactly the reference's bits and the same winner is chosen).
class E8pNearestCpu {
 public:
  E8pNearestCpu() {
    for (int a = 0; a < 256; ++a) {
      const uint32_t w = e8p::kE8pPackedAbs[a];
      int n2 = 0;
      for (int i = 0; i < 8; ++i) {
        const int nib = static_cast<int>((w >> (4 * e8p::sigma(i))) & 15u);
        const int c = nib >= 8 ? nib - 8 : 8 - nib;
        c_[a][i] = c;
        n2 += c * c;
      }
      nc2_[a] = n2;
      odd_[a] = (w >> 28) < 8u ? 1u : 0u;
    }
  }

  uint32_t operator()(const float x[8]) const {
    double best_key[2];
    int best_a[2];
    e8p::E8pShift sh[2];
    for (int t = 0; t < 2; ++t) {
      sh[t] = e8p::e8p_prepare_shift(x, t);
      const uint32_t par = static_cast<uint32_t>(__builtin_parity(sh[t].neg_mask));
      double best = 0.0;
      int best_idx = -1;
      for (int a0 = 0; a0 < 256; a0 += kLanes) {
        double key[kLanes];
        keys(sh[t], par, a0, key);
        for (int k = 0; k < kLanes; ++k)
          if (best_idx < 0 || key[k] < best) {
            best = key[k];
            best_idx = a0 + k;
          }
      }
      best_key[t] = best;
      best_a[t] = best_idx;
    }
    const int t = best_key[0] - best_key[1] <= e8p::e8p_sum_x4(x) ? 0 : 1;
    return e8p::e8p_make_code(sh[t], best_a[t], e8p::kE8pPackedAbs[best_a[t]], t);
  }

 private:
  static constexpr int kLanes = 8;

  void keys(const e8p::E8pShift& sh, uint32_t par, int a0, double* out) const {
    double s[kLanes], mn[kLanes];
    for (int k = 0; k < kLanes; ++k) {
      const double p = c_[a0 + k][0] * sh.v[0];
      s[k] = p;
      mn[k] = p;
    }
    for (int i = 1; i < 8; ++i)
      for (int k = 0; k < kLanes; ++k) {
        const double p = c_[a0 + k][i] * sh.v[i];
        s[k] = s[k] + p;
        mn[k] = p < mn[k] ? p : mn[k];
      }
    for (int k = 0; k < kLanes; ++k) {
      const double sk = par != odd_[a0 + k] ? s[k] - 2.0 * mn[k] : s[k];
      out[k] = nc2_[a0 + k] - 4.0 * sk;
    }
  }

  double c_[256][8];
  double nc2_[256];
  uint32_t odd_[256];
};

const E8pNearestCpu& e8p_nearest_cpu() {
  static const E8pNearestCpu table;
  return table;
}

/// In-place unnormalised natural-order Walsh-Hadamard transform of x[0..p), stages h = 1, 2, 4, ...
void fwht(float* x, int64_t p) {
  for (int64_t h = 1; h < p; h *= 2)
    for (int64_t i = 0; i < p; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

}  // namespace

void CpuQuantKernels::hadamard_rows(MatrixView<float> x, const HadamardFactor& f, Op op,
                                    MatrixView<const float> signs_in, MatrixView<const float> signs_out) {
  quant_checks::hadamard(x, f, signs_in, signs_out);
  const int64_t n = f.n, p = f.p, k = f.k;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  const float* s_in = signs_in.data;
  const float* s_out = signs_out.data;
  // H_K (kNoTrans) or H_Kᵀ (kTrans) as the mixing matrix G: y[r] = Σ_{r'} G[r][r'] x[r'].
  std::vector<int8_t> g(f.hk.size());
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < k; ++c) g[r * k + c] = op == Op::kNoTrans ? f.hk[r * k + c] : f.hk[c * k + r];

#pragma omp parallel if (x.size() > kParallelMinElems)
  {
    std::vector<float> buf(static_cast<size_t>(n)), out(static_cast<size_t>(k > 1 ? n : 0));
#pragma omp for schedule(static)
    for (int64_t row = 0; row < x.rows; ++row) {
      float* xr = x.row(row);
      for (int64_t i = 0; i < n; ++i) buf[i] = s_in ? xr[i] * s_in[i] : xr[i];
      for (int64_t r = 0; r < k; ++r) fwht(buf.data() + r * p, p);
      const float* src = buf.data();
      if (k > 1) {
        // Accumulate in r' order 0..k-1 (the CUDA kernel does the same).
        for (int64_t r = 0; r < k; ++r) {
          float* y = out.data() + r * p;
          const int8_t* gr = g.data() + r * k;
          const float* x0 = buf.data();
          if (gr[0] > 0)
            for (int64_t c = 0; c < p; ++c) y[c] = x0[c];
          else
            for (int64_t c = 0; c < p; ++c) y[c] = -x0[c];
          for (int64_t rp = 1; rp < k; ++rp) {
            const float* xs = buf.data() + rp * p;
            if (gr[rp] > 0)
              for (int64_t c = 0; c < p; ++c) y[c] += xs[c];
            else
              for (int64_t c = 0; c < p; ++c) y[c] -= xs[c];
          }
        }
        src = out.data();
      }
      for (int64_t i = 0; i < n; ++i) {
        const float v = src[i] * scale;
        xr[i] = s_out ? v * s_out[i] : v;
      }
    }
  }
}

void CpuQuantKernels::lattice_quantize(MatrixView<const float> x, LatticeCodebook cb, float residual_scale,
                                       MatrixView<float> xhat, MatrixView<uint32_t> codes) {
  quant_checks::lattice(x, codes, cb, residual_scale, "lattice_quantize");
  const bool write_xhat = xhat.data != nullptr;
  if (write_xhat) CALDERA_CHECK(same_shape(x, xhat), "lattice_quantize: xhat must match x (", x.rows, "x", x.cols, ")");
  const int64_t nb = x.cols / 8;
  const int64_t total = x.rows * nb;
  const E8pNearestCpu& nearest = e8p_nearest_cpu();
#pragma omp parallel for schedule(dynamic, 256) if (total > 256)
  for (int64_t t = 0; t < total; ++t) {
    const int64_t i = t / nb, b = t % nb;
    float v[8], out[8];
    for (int c = 0; c < 8; ++c) v[c] = x(i, 8 * b + c);
    codes(i, b) = e8p::lattice_encode8_with(nearest, cb, residual_scale, v, out);
    if (write_xhat)
      for (int c = 0; c < 8; ++c) xhat(i, 8 * b + c) = out[c];
  }
}

void CpuQuantKernels::lattice_decode(MatrixView<const uint32_t> codes, LatticeCodebook cb, float residual_scale,
                                     MatrixView<float> xhat) {
  quant_checks::lattice(xhat, codes, cb, residual_scale, "lattice_decode");
#pragma omp parallel for schedule(static) if (xhat.size() > kParallelMinElems)
  for (int64_t i = 0; i < codes.rows; ++i)
    for (int64_t b = 0; b < codes.cols; ++b) {
      float out[8];
      e8p::lattice_decode8(cb, residual_scale, codes(i, b), out);
      for (int c = 0; c < 8; ++c) xhat(i, 8 * b + c) = out[c];
    }
}

namespace {

/// One row of an LDLQ panel (LdlqPanelArgs): blocks from last to first; `round` maps the target
/// T_j (8 values, block j) to Ŵ_j and stores its code(s).
template <class Round>
void ldlq_panel_row(const LdlqPanelArgs& a, int64_t row, Round&& round) {
  const int64_t w = a.base.cols, nb = w / 8;
  float base[128], delta[128], what[128];
  const float* br = a.base.row(row);
  const float* ar = a.acc.row(row);
  for (int64_t i = 0; i < w; ++i) base[i] = br[i];
  for (int64_t j = nb - 1; j >= 0; --j) {
    float f[8];
    for (int c = 0; c < 8; ++c) {
      float s = ar[8 * j + c];
      for (int64_t q = 8 * (j + 1); q < w; ++q) s += delta[q] * a.mix(q, 8 * j + c);
      f[c] = s;
    }
    float t[8];
    if (a.block_inv.data != nullptr) {
      for (int c = 0; c < 8; ++c) {
        float s = 0.0f;
        for (int q = 0; q < 8; ++q) s += f[q] * a.block_inv(8 * j + q, c);
        t[c] = base[8 * j + c] + s;
      }
    } else {
      for (int c = 0; c < 8; ++c) t[c] = base[8 * j + c] + f[c];
    }
    round(j, t, what + 8 * j);
    for (int c = 0; c < 8; ++c) delta[8 * j + c] = base[8 * j + c] - what[8 * j + c];
  }
  float* wr = a.what.row(row);
  float* dr = a.delta.row(row);
  for (int64_t i = 0; i < w; ++i) {
    wr[i] = what[i];
    dr[i] = delta[i];
  }
}

}  // namespace

void CpuQuantKernels::ldlq_panel_lattice(const LdlqPanelArgs& args, LatticeCodebook cb, float residual_scale,
                                         MatrixView<uint32_t> codes) {
  quant_checks::ldlq_panel(args, codes.cols, codes.rows);
  CALDERA_CHECK(codes.cols * 8 == args.base.cols, "ldlq_panel_lattice: codes must be ", args.base.rows, "x",
                args.base.cols / 8, ", got ", codes.rows, "x", codes.cols);
  CALDERA_CHECK(cb == LatticeCodebook::kE8P12 || residual_scale > 0.0f,
                "ldlq_panel_lattice: RVQ codebooks need a positive residual scale, got ", residual_scale);
  const E8pNearestCpu& nearest = e8p_nearest_cpu();
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t row = 0; row < args.base.rows; ++row)
    ldlq_panel_row(args, row, [&](int64_t j, const float* t, float* out) {
      codes(row, j) = e8p::lattice_encode8_with(nearest, cb, residual_scale, t, out);
    });
}

void CpuQuantKernels::ldlq_panel_scalar(const LdlqPanelArgs& args, const ScalarGrid& grid, MatrixView<uint8_t> codes) {
  quant_checks::ldlq_panel(args, codes.cols, codes.rows);
  CALDERA_CHECK(same_shape(codes, args.base), "ldlq_panel_scalar: codes must be ", args.base.rows, "x",
                args.base.cols);
  quant_checks::scalar_grid(grid, args.base.rows, args.base.cols, "ldlq_panel_scalar");
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t row = 0; row < args.base.rows; ++row)
    ldlq_panel_row(args, row, [&](int64_t j, const float* t, float* out) {
      for (int c = 0; c < 8; ++c) {
        const int64_t col = 8 * j + c;
        const int64_t g = (grid.col_offset + col) / grid.group_size;
        const float s = grid.scale(row, g), z = grid.zero(row, g);
        const uint32_t q = scalar::quantize(t[c], s, z, grid.bits);
        codes(row, col) = static_cast<uint8_t>(q);
        out[c] = scalar::dequantize(q, s, z);
      }
    });
}

void CpuQuantKernels::scalar_fit(MatrixView<const float> x, const ScalarFitSpec& spec, MatrixView<float> scale,
                                 MatrixView<float> zero) {
  CALDERA_CHECK(spec.bits >= 1 && spec.bits <= 8 && spec.group_size > 0, "scalar_fit: bits must be 1..8 (got ",
                spec.bits, ") and group_size > 0 (got ", spec.group_size, ")");
  const int64_t ng = (x.cols + spec.group_size - 1) / spec.group_size;
  CALDERA_CHECK(same_shape(scale, zero) && scale.rows == x.rows && scale.cols == ng, "scalar_fit: scale/zero must be ",
                x.rows, "x", ng, ", got ", scale.rows, "x", scale.cols, " and ", zero.rows, "x", zero.cols);
#pragma omp parallel for schedule(static) if (x.size() > kParallelMinElems)
  for (int64_t i = 0; i < x.rows; ++i)
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * spec.group_size, c1 = std::min(x.cols, c0 + spec.group_size);
      float lo = x(i, c0), hi = x(i, c0);
      for (int64_t c = c0 + 1; c < c1; ++c) {
        lo = std::min(lo, x(i, c));
        hi = std::max(hi, x(i, c));
      }
      scalar::grid_from_range(lo, hi, spec.bits, spec.symmetry, spec.range, spec.zero_point, &scale(i, g), &zero(i, g));
    }
}

void CpuQuantKernels::scalar_quantize(MatrixView<const float> x, const ScalarGrid& grid, MatrixView<uint8_t> codes,
                                      MatrixView<float> xhat) {
  quant_checks::scalar_grid(grid, x.rows, x.cols, "scalar_quantize");
  const bool want_codes = codes.data != nullptr, want_xhat = xhat.data != nullptr;
  CALDERA_CHECK(!want_codes || same_shape(codes, x), "scalar_quantize: codes must be ", x.rows, "x", x.cols);
  CALDERA_CHECK(!want_xhat || same_shape(xhat, x), "scalar_quantize: xhat must be ", x.rows, "x", x.cols);
#pragma omp parallel for schedule(static) if (x.size() > kParallelMinElems)
  for (int64_t i = 0; i < x.rows; ++i)
    for (int64_t c = 0; c < x.cols; ++c) {
      const int64_t g = (grid.col_offset + c) / grid.group_size;
      const float s = grid.scale(i, g), z = grid.zero(i, g);
      const uint32_t q = scalar::quantize(x(i, c), s, z, grid.bits);
      if (want_codes) codes(i, c) = static_cast<uint8_t>(q);
      if (want_xhat) xhat(i, c) = scalar::dequantize(q, s, z);
    }
}

void CpuQuantKernels::scalar_dequantize(MatrixView<const uint8_t> codes, const ScalarGrid& grid,
                                        MatrixView<float> xhat) {
  quant_checks::scalar_grid(grid, codes.rows, codes.cols, "scalar_dequantize");
  CALDERA_CHECK(same_shape(codes, xhat), "scalar_dequantize: xhat must be ", codes.rows, "x", codes.cols);
#pragma omp parallel for schedule(static) if (xhat.size() > kParallelMinElems)
  for (int64_t i = 0; i < codes.rows; ++i)
    for (int64_t c = 0; c < codes.cols; ++c) {
      const int64_t g = (grid.col_offset + c) / grid.group_size;
      xhat(i, c) = scalar::dequantize(codes(i, c), grid.scale(i, g), grid.zero(i, g));
    }
}

}  // namespace caldera::linalg
