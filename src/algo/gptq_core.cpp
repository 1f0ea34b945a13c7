// GPTQ engine (spqr.md §3): Hessian preparation and the blocked column loop. See gptq_core.h.
#include "algo/gptq_core.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "algo/hessian.h"
#include "core/log.h"
#include "core/timer.h"

namespace caldera::algo {

std::string_view to_string(ColumnOrder order) noexcept {
  return order == ColumnOrder::kActOrder ? "act_order" : "identity";
}

void check_permutation(std::span<const int32_t> perm, int64_t n, std::string_view what) {
  if (static_cast<int64_t>(perm.size()) != n) raise<IoError>(what, ": permutation has ", perm.size(), " entries, expected ", n);
  std::vector<uint8_t> seen(static_cast<size_t>(n), 0);
  for (int32_t p : perm) {
    if (p < 0 || p >= n || seen[static_cast<size_t>(p)])
      raise<IoError>(what, ": not a permutation of 0..", n - 1, " (entry ", p, " out of range or repeated)");
    seen[static_cast<size_t>(p)] = 1;
  }
}

GptqHessian prepare_gptq_hessian(linalg::Backend& backend, const InputStats& stats, const GptqHessianOptions& options) {
  const int64_t n = stats.sum_xxt.rows();
  CALDERA_CHECK(n > 0 && stats.sum_xxt.cols() == n, "GPTQ Hessian: Σxxᵀ must be square and non-empty, got ",
                stats.sum_xxt.rows(), "x", stats.sum_xxt.cols());
  CALDERA_CHECK_AS(ConfigError, std::isfinite(options.percdamp) && options.percdamp > 0,
                   "--percdamp must be a finite number > 0, got ", options.percdamp);

  // §3.2: act_order sorts by diag(H) descending; a stable sort makes ties deterministic.
  GptqHessian out;
  out.perm.resize(static_cast<size_t>(n));
  std::iota(out.perm.begin(), out.perm.end(), 0);
  if (options.order == ColumnOrder::kActOrder) {
    std::stable_sort(out.perm.begin(), out.perm.end(),
                     [&](int32_t a, int32_t b) { return stats.sum_xxt(a, a) > stats.sum_xxt(b, b); });
  }

  // §3.1 H = (2/N_seq)·Σxxᵀ, gathered into permuted coordinates (§3.2). The scale cancels in
  // every later step, so statistics without a sequence count use the token count instead.
  const double scale = stats.n_sequences > 0 ? 2.0 / static_cast<double>(stats.n_sequences)
                                             : (stats.count > 0 ? 2.0 / static_cast<double>(stats.count) : 1.0);
  HostMatrix<double> h(n, n);
  for (int64_t i = 0; i < n; ++i) {
    const double* src = stats.sum_xxt.data() + static_cast<int64_t>(out.perm[static_cast<size_t>(i)]) * n;
    double* dst = h.data() + i * n;
    for (int64_t j = 0; j < n; ++j) dst[j] = scale * src[out.perm[static_cast<size_t>(j)]];
  }
  // §3.3 dead columns (before damping) and the damping base mean_j |H_jj|.
  out.dead.assign(static_cast<size_t>(n), 0);
  std::vector<double> diag(static_cast<size_t>(n));
  double mean_abs_diag = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    diag[static_cast<size_t>(j)] = h(j, j);
    out.dead[static_cast<size_t>(j)] = h(j, j) == 0.0 ? 1 : 0;
    mean_abs_diag += std::abs(h(j, j));
  }
  mean_abs_diag /= static_cast<double>(n);

  double percdamp = options.percdamp;
  for (int attempt = 0;; ++attempt) {
    const double lambda = percdamp * mean_abs_diag;
    for (int64_t j = 0; j < n; ++j) h(j, j) = out.dead[static_cast<size_t>(j)] ? 1.0 : diag[static_cast<size_t>(j)] + lambda;
    try {
      // H = L Lᵀ; H⁻¹ = L⁻ᵀL⁻¹; H⁻¹ = L₂L₂ᵀ so U = L₂ᵀ is the upper factor of §3.3. All in fp64.
      linalg::Matrix<double> work = backend.upload(h.cview(), "gptq.hessian");
      backend.cholesky(work.view());
      backend.cholesky_inverse(work.view());
      backend.cholesky(work.view());
      out.chol_inv = backend.make<float>(n, n, "gptq.chol_inv");
      backend.convert(work.cview(), out.chol_inv.view());
      break;
    } catch (const NumericError& e) {
      if (attempt >= options.max_damping_retries)
        raise<NumericError>("GPTQ Hessian (n=", n, "): not positive definite even with percdamp ", percdamp, ": ",
                            e.what());
      log_warn("GPTQ Hessian (n=", n, "): Cholesky failed with percdamp ", percdamp, " (", e.what(),
               "); retrying with ", percdamp * 10);
      percdamp *= 10;
    }
  }
  out.percdamp_used = percdamp;

  linalg::Matrix<float> d = backend.make<float>(1, n, "gptq.diag");
  backend.diagonal(out.chol_inv.cview(), d.view());
  const HostMatrix<float> d_host = backend.download(d);
  out.d.assign(d_host.data(), d_host.data() + n);
  return out;
}

HostMatrix<float> permute_columns(MatrixView<const float> w, std::span<const int32_t> perm,
                                  std::span<const uint8_t> dead) {
  CALDERA_CHECK(static_cast<int64_t>(perm.size()) == w.cols && dead.size() == perm.size(), "permute_columns: ",
                perm.size(), " permutation entries and ", dead.size(), " dead flags for ", w.cols, " columns");
  HostMatrix<float> out(w.rows, w.cols);
  for (int64_t i = 0; i < w.rows; ++i)
    for (int64_t j = 0; j < w.cols; ++j)
      out(i, j) = dead[static_cast<size_t>(j)] ? 0.0f : w(i, perm[static_cast<size_t>(j)]);
  return out;
}

HostMatrix<float> unpermute_columns(MatrixView<const float> w, std::span<const int32_t> perm) {
  CALDERA_CHECK(static_cast<int64_t>(perm.size()) == w.cols, "unpermute_columns: ", perm.size(),
                " permutation entries for ", w.cols, " columns");
  HostMatrix<float> out(w.rows, w.cols);
  for (int64_t i = 0; i < w.rows; ++i)
    for (int64_t j = 0; j < w.cols; ++j) out(i, perm[static_cast<size_t>(j)]) = w(i, j);
  return out;
}

int64_t effective_block_size(int64_t block_size, int64_t group_size, int64_t n) {
  CALDERA_CHECK(block_size > 0 && group_size > 0, "GPTQ: block size ", block_size, " and group size ", group_size,
                " must be > 0");
  if (group_size >= n || group_size % block_size == 0 || block_size % group_size == 0) return block_size;
  return group_size * ((block_size + group_size - 1) / group_size);
}

namespace {

// Quantizes columns [c0, c1) of the panel (panel column 0 = matrix column bs) for every row, with
// the intra-block rank-1 feedback of §3.4 restricted to the panel. u_rows(jl, k) = U[bs+jl, bs+k].
void quantize_panel_columns(ColumnQuantizer& quantizer, MatrixView<float> panel, MatrixView<float> errors,
                            MatrixView<float> w_hat, const HostMatrix<float>& u_rows, std::span<const float> d,
                            int64_t bs, int64_t c0, int64_t c1) {
  const int64_t m = panel.rows;
  const int64_t nb = panel.cols;
#pragma omp parallel for schedule(static) if (m * (c1 - c0) * nb >= (int64_t{1} << 22))
  for (int64_t i = 0; i < m; ++i) {
    float* row = panel.row(i);
    for (int64_t jl = c0; jl < c1; ++jl) {
      const int64_t j = bs + jl;
      const float dj = d[static_cast<size_t>(j)];
      const float w = row[jl];
      const float wq = quantizer.quantize(i, j, w, dj);
      w_hat(i, j) = wq;
      const float e = (w - wq) / dj;
      errors(i, jl) = e;
      if (e != 0.0f) {
        const float* u = u_rows.data() + jl * nb;
        for (int64_t k = jl + 1; k < nb; ++k) row[k] -= e * u[k];
      }
    }
  }
}

}  // namespace

HostMatrix<float> gptq_quantize(linalg::Backend& backend, MatrixView<const float> w, const GptqHessian& hessian,
                                ColumnQuantizer& quantizer, const GptqLoopOptions& options) {
  const int64_t m = w.rows;
  const int64_t n = w.cols;
  CALDERA_CHECK(hessian.n() == n && hessian.chol_inv.rows() == n && static_cast<int64_t>(hessian.d.size()) == n,
                "gptq_quantize: W has ", n, " columns but the prepared Hessian is ", hessian.n(), "x", hessian.n());
  CALDERA_CHECK(m > 0 && n > 0, "gptq_quantize: empty matrix ", m, "x", n);
  const int64_t group = std::min(quantizer.group_size(), n);
  const int64_t block = effective_block_size(options.block_size, group, n);

  linalg::Matrix<float> w_dev = backend.upload(w, "gptq.w");
  linalg::Matrix<float> e_dev = backend.make<float>(m, std::min(block, n), "gptq.errors");
  HostMatrix<float> w_hat(m, n);
  HostMatrix<float> panel(m, std::min(block, n));
  HostMatrix<float> errors(m, std::min(block, n));
  const std::span<const float> d(hessian.d);

  double host_s = 0.0;
  Stopwatch total;
  for (int64_t bs = 0; bs < n; bs += block) {
    const int64_t be = std::min(bs + block, n);
    const int64_t nb = be - bs;
    MatrixView<float> pv = panel.view().cols_range(0, nb);
    MatrixView<float> ev = errors.view().cols_range(0, nb);
    backend.download(w_dev.cview().cols_range(bs, nb), pv);
    // u_rows(jl, k) = U[bs+jl, bs+k] = L₂[bs+k, bs+jl]: rows of U made contiguous for the updates.
    const HostMatrix<float> l_block = backend.download(hessian.chol_inv.cview().block(bs, bs, nb, nb));
    Stopwatch host;
    HostMatrix<float> u_rows(nb, nb);
    for (int64_t a = 0; a < nb; ++a)
      for (int64_t b = 0; b < nb; ++b) u_rows(a, b) = l_block(b, a);

    if (group > block) {
      // Groups at least as wide as the block start at block starts (effective_block_size):
      // every later column of the group is current now, so fit on a download of its full width.
      if (bs % group == 0) {
        const int64_t g = std::min(group, n - bs);
        const HostMatrix<float> cur = backend.download(w_dev.cview().cols_range(bs, g));
        quantizer.begin_group(bs, cur.cview(), d.subspan(static_cast<size_t>(bs), static_cast<size_t>(g)));
      }
      quantize_panel_columns(quantizer, pv, ev, w_hat.view(), u_rows, d, bs, 0, nb);
    } else {
      // Groups nest inside the block: fit each on the panel once the columns before it are done.
      for (int64_t c0 = 0; c0 < nb; c0 += group) {
        const int64_t g = std::min(group, nb - c0);
        quantizer.begin_group(bs + c0, MatrixView<const float>(pv).cols_range(c0, g),
                              d.subspan(static_cast<size_t>(bs + c0), static_cast<size_t>(g)));
        quantize_panel_columns(quantizer, pv, ev, w_hat.view(), u_rows, d, bs, c0, c0 + g);
      }
    }

    host_s += host.elapsed_s();
    if (be < n) {
      // W[:, be:] -= E·U[bs:be, be:] = E·(L₂[be:, bs:be])ᵀ  (one GEMM for the rest of the matrix).
      backend.upload(MatrixView<const float>(ev), e_dev.view().cols_range(0, nb));
      backend.gemm(linalg::Op::kNoTrans, linalg::Op::kTrans, -1.0f, e_dev.cview().cols_range(0, nb),
                   hessian.chol_inv.cview().block(be, bs, n - be, nb), 1.0f, w_dev.view().cols_range(be, n - be));
    }
    if (options.progress) options.progress(static_cast<double>(be) / static_cast<double>(n));
  }
  if (options.timings) {
    options.timings->host_s += host_s;
    options.timings->backend_s += total.elapsed_s() - host_s;
  }
  return w_hat;
}

double hessian_relative_error(linalg::Backend& backend, MatrixView<const float> w, MatrixView<const float> w_hat,
                              const InputStats& stats) {
  CALDERA_CHECK(same_shape(w, w_hat), "hessian_relative_error: W is ", w.rows, "x", w.cols, " but Ŵ is ", w_hat.rows,
                "x", w_hat.cols);
  // The metric every method reports (algo/hessian.h): H of caldera-quipsharp.md §6.5, REL_ERR §1.3.
  const HostMatrix<double> h64 = process_hessian(stats, w.cols, kDefaultHessianRidge, "GPTQ/SpQR error metric");
  HostMatrix<float> h32(h64.rows(), h64.cols());
  for (int64_t k = 0; k < h32.size(); ++k) h32.data()[k] = static_cast<float>(h64.data()[k]);
  const linalg::Matrix<float> h = backend.upload(h32.cview(), "rel_error.h");
  const linalg::Matrix<float> wd = backend.upload(w, "rel_error.w");
  const linalg::Matrix<float> wh = backend.upload(w_hat, "rel_error.w_hat");
  ActivationErrorMeter meter(backend, wd.cview(), h.cview());
  return meter.rel_error(wh.cview());
}

}  // namespace caldera::algo
