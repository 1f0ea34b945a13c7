// Helpers shared by the low-rank unit tests: whitened problems built on the CPU reference backend.
#pragma once

#include "algo/low_rank.h"
#include "test_util.h"

namespace caldera::algo::test_lr {

/// Host data and backend copies of one LR problem: A (m×n) with a decaying spectrum, H SPD (n×n),
/// C = chol(H), Ã = A·C. All fp32 on the CPU backend.
struct Problem {
  HostMatrix<double> a64, h64;
  linalg::Matrix<float> a, h, chol, a_white;
  LrProblem view() const { return LrProblem{a.cview(), a_white.cview(), chol.cview()}; }
};

inline Problem make_problem(int64_t m, int64_t n, uint64_t seed, double decay = 0.85) {
  auto& be = caldera::test::cpu_backend();
  Problem p;
  // A = G1 diag(decay^i) G2 / sqrt(n): a decaying spectrum like real weights.
  const int64_t r = std::min(m, n);
  auto g1 = caldera::test::random_normal_f64(m, r, seed);
  auto g2 = caldera::test::random_normal_f64(r, n, seed + 1);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < r; ++j) g1(i, j) *= std::pow(decay, static_cast<double>(j)) / std::sqrt(static_cast<double>(n));
  p.a64 = caldera::test::matmul(g1.cview(), g2.cview());
  p.h64 = caldera::test::random_spd(n, 200.0, seed + 2);
  p.a = be.upload(caldera::test::cast_matrix<float>(p.a64).cview(), "a");
  p.h = be.upload(caldera::test::cast_matrix<float>(p.h64).cview(), "h");
  p.chol = be.clone(p.h.cview(), "chol");
  be.cholesky(p.chol.view());
  p.a_white = be.make<float>(m, n, "a_white");
  be.gemm(linalg::Op::kNoTrans, linalg::Op::kNoTrans, 1.0f, p.a.cview(), p.chol.cview(), 0.0f, p.a_white.view());
  return p;
}

/// ‖(A − L·R)·C‖_F / ‖A·C‖_F computed directly in fp64 on the host copies.
inline double whitened_rel_error(const Problem& p, const HostMatrix<float>& l, const HostMatrix<float>& r) {
  auto& be = caldera::test::cpu_backend();
  const auto lr = caldera::test::host_matmul(l.cview(), r.cview());
  HostMatrix<double> e = p.a64;
  for (int64_t i = 0; i < e.size(); ++i) e.data()[i] -= lr.data()[i];
  auto c = be.download(p.chol);
  HostMatrix<double> c64(c.rows(), c.cols());
  for (int64_t i = 0; i < c.size(); ++i) c64.data()[i] = c.data()[i];
  const auto ec = caldera::test::matmul(e.cview(), c64.cview());
  const auto ac = caldera::test::matmul(p.a64.cview(), c64.cview());
  double num = 0, den = 0;
  for (int64_t i = 0; i < ec.size(); ++i) {
    num += ec.data()[i] * ec.data()[i];
    den += ac.data()[i] * ac.data()[i];
  }
  return std::sqrt(num / den);
}

}  // namespace caldera::algo::test_lr
