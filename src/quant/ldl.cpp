// Block LDL (spec §3.3). The heavy parts (Cholesky, the per-panel products C·blockdiag(T⁻¹)) run on
// the backend; the n/8 8×8 inverses and products run on the host in fp64.
#include "quant/ldl.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"

namespace caldera::quant {

using linalg::Backend;
using linalg::Matrix;
using linalg::Op;

namespace {

constexpr int64_t kB = kLdlBlock;
constexpr int64_t kPanel = 128;

/// View of row r of every diagonal 8×8 block: block j's row r sits at (8j + r)·ld + 8j.
template <class T>
MatrixView<T> diag_block_rows(MatrixView<T> a, int64_t r) {
  return MatrixView<T>(a.data + r * a.ld, a.rows / kB, kB, kB * a.ld + kB);
}

/// Inverse of a lower-triangular 8×8 matrix (row-major) in fp64; throws on a non-positive pivot.
void invert_lower8(const double* t, double* inv, int64_t block) {
  for (int64_t i = 0; i < kB * kB; ++i) inv[i] = 0.0;
  for (int64_t c = 0; c < kB; ++c) {
    // Solve T x = e_c by forward substitution.
    for (int64_t i = c; i < kB; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (int64_t k = c; k < i; ++k) s -= t[i * kB + k] * inv[k * kB + c];
      const double piv = t[i * kB + i];
      if (!(piv > 0.0) || !std::isfinite(piv))
        raise<NumericError>("block_ldl: Cholesky pivot ", piv, " in diagonal block ", block, " is not positive");
      inv[i * kB + c] = s / piv;
    }
  }
}

/// Inverse of a symmetric positive definite 8×8 matrix in fp64 (Cholesky); throws NumericError.
void invert_spd8(const double* a, double* inv, int64_t block) {
  double l[kB * kB] = {};
  for (int64_t j = 0; j < kB; ++j) {
    double d = a[j * kB + j];
    for (int64_t k = 0; k < j; ++k) d -= l[j * kB + k] * l[j * kB + k];
    if (!(d > 0.0) || !std::isfinite(d))
      raise<NumericError>("block_ldl: diagonal block ", block, " of H' (rows ", kB * block, "..", kB * block + 7,
                          ") is not positive definite (pivot ", d, ")");
    l[j * kB + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < kB; ++i) {
      double s = a[i * kB + j];
      for (int64_t k = 0; k < j; ++k) s -= l[i * kB + k] * l[j * kB + k];
      l[i * kB + j] = s / l[j * kB + j];
    }
  }
  double li[kB * kB];
  invert_lower8(l, li, block);
  for (int64_t i = 0; i < kB; ++i)
    for (int64_t j = 0; j < kB; ++j) {
      double s = 0.0;
      for (int64_t k = std::max(i, j); k < kB; ++k) s += li[k * kB + i] * li[k * kB + j];  // (L⁻¹)ᵀ L⁻¹
      inv[i * kB + j] = s;
    }
}

/// Lower Cholesky factor of h into c (float), fp32 first and fp64 on failure.
bool cholesky_with_retry(Backend& be, MatrixView<const float> h, MatrixView<float> c) {
  be.copy(h, c);
  try {
    be.cholesky(c);
    if (be.all_finite(MatrixView<const float>(c))) return false;
  } catch (const NumericError& e) {
    log_warn("block_ldl: fp32 Cholesky of the ", h.rows, "x", h.cols, " Hessian failed (", e.what(),
             "); retrying in fp64");
  }
  auto hd = be.make<double>(h.rows, h.cols, "block_ldl fp64 H'");
  be.convert(h, hd.view());
  try {
    be.cholesky(hd.view());
  } catch (const NumericError& e) {
    raise<NumericError>("block_ldl: H' (", h.rows, "x", h.cols, ") is not positive definite even in fp64: ",
                        e.what());
  }
  be.convert(hd.cview(), c);
  return true;
}

}  // namespace

HostMatrix<float> download_diagonal_blocks(Backend& be, MatrixView<const float> a) {
  CALDERA_CHECK(a.rows == a.cols && a.rows % kB == 0, "diagonal blocks: square matrix with n % 8 == 0 expected, got ",
                a.rows, "x", a.cols);
  HostMatrix<float> out(a.rows, kB);
  for (int64_t r = 0; r < kB; ++r)
    be.download(diag_block_rows(a, r), MatrixView<float>(out.data() + r * kB, a.rows / kB, kB, kB * kB));
  return out;
}

BlockLdl block_ldl(Backend& be, MatrixView<const float> h) {
  const int64_t n = h.rows;
  CALDERA_CHECK(h.cols == n && n % kB == 0 && n > 0, "block_ldl: square H' with n % 8 == 0 expected, got ", h.rows,
                "x", h.cols);
  BlockLdl out;
  out.l = be.make<float>(n, n, "block_ldl L");
  out.used_fp64 = cholesky_with_retry(be, h, out.l.view());
  const int64_t nb = n / kB;

  // T_j (fp64 on the host) -> D_j = T_j T_jᵀ and T_j⁻¹.
  const HostMatrix<float> t = download_diagonal_blocks(be, out.l.cview());
  HostMatrix<float> d(n, kB), tinv(n, kB);
  for (int64_t j = 0; j < nb; ++j) {
    double tj[kB * kB], ij[kB * kB];
    for (int64_t r = 0; r < kB; ++r)
      for (int64_t c = 0; c < kB; ++c) tj[r * kB + c] = c <= r ? t(kB * j + r, c) : 0.0;
    invert_lower8(tj, ij, j);
    for (int64_t r = 0; r < kB; ++r)
      for (int64_t c = 0; c < kB; ++c) {
        double s = 0.0;
        for (int64_t k = 0; k <= std::min(r, c); ++k) s += tj[r * kB + k] * tj[c * kB + k];
        d(kB * j + r, c) = static_cast<float>(s);
        tinv(kB * j + r, c) = static_cast<float>(ij[r * kB + c]);
      }
  }

  // 𝐋[:, panel] = C[:, panel] · blockdiag(T⁻¹) for 128-column panels (rows above the panel are 0).
  auto tmp = be.make<float>(n, std::min(n, kPanel), "block_ldl panel");
  for (int64_t c0 = 0; c0 < n; c0 += kPanel) {
    const int64_t w = std::min(kPanel, n - c0);
    HostMatrix<float> bd(w, w);
    for (int64_t j = 0; j < w / kB; ++j)
      for (int64_t r = 0; r < kB; ++r)
        for (int64_t c = 0; c < kB; ++c) bd(kB * j + r, kB * j + c) = tinv(c0 + kB * j + r, c);
    auto bd_dev = be.upload(bd.cview(), "block_ldl blockdiag(T^-1)");
    auto src = tmp.view().block(0, 0, n - c0, w);
    auto dst = out.l.view().block(c0, c0, n - c0, w);
    be.copy(MatrixView<const float>(dst), src);
    be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, src, bd_dev.cview(), 0.0f, dst);
  }
  // Exact identity diagonal blocks (T_j T_j⁻¹ only rounds to I).
  HostMatrix<float> eye(n, kB);
  for (int64_t i = 0; i < n; ++i) eye(i, i % kB) = 1.0f;
  for (int64_t r = 0; r < kB; ++r)
    be.upload(MatrixView<const float>(eye.data() + r * kB, nb, kB, kB * kB), diag_block_rows(out.l.view(), r));
  if (!be.all_finite(out.l.cview()))
    raise<NumericError>("block_ldl: the block-LDL factor of the ", n, "x", n, " H' has non-finite entries");

  // (H'_jj)⁻¹ for the tune sweeps, from H' itself in fp64.
  const HostMatrix<float> hb = download_diagonal_blocks(be, h);
  HostMatrix<float> hinv(n, kB);
  for (int64_t j = 0; j < nb; ++j) {
    double a[kB * kB], inv[kB * kB];
    for (int64_t r = 0; r < kB; ++r)
      for (int64_t c = 0; c < kB; ++c)
        a[r * kB + c] = 0.5 * (static_cast<double>(hb(kB * j + r, c)) + static_cast<double>(hb(kB * j + c, r)));
    invert_spd8(a, inv, j);
    for (int64_t r = 0; r < kB; ++r)
      for (int64_t c = 0; c < kB; ++c) hinv(kB * j + r, c) = static_cast<float>(inv[r * kB + c]);
  }
  out.d = be.upload(d.cview(), "block_ldl D");
  out.hjj_inv = be.upload(hinv.cview(), "block_ldl H'_jj^-1");
  return out;
}

}  // namespace caldera::quant
