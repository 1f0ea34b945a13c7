// Randomized Hadamard transform (spec §4.3): each two-sided product is a row transform, a
// transpose, and a second row transform.
#include "quant/rht.h"

#include "core/error.h"

namespace caldera::quant {

using linalg::Backend;
using linalg::Matrix;
using linalg::Op;

namespace {

Matrix<float> upload_signs(Backend& be, const std::vector<float>& s, int64_t n, const char* what) {
  CALDERA_CHECK(static_cast<int64_t>(s.size()) == n, "RHT: ", what, " has ", s.size(), " entries, expected ", n);
  return be.upload(MatrixView<const float>(s.data(), 1, n), what);
}

}  // namespace

RhtSigns make_rht_signs(const Rng& unit_stream, int64_t m, int64_t n) {
  CALDERA_CHECK(m > 0 && n > 0, "make_rht_signs: dimensions must be positive, got ", m, "x", n);
  RhtSigns s;
  s.su = unit_stream.stream({static_cast<uint64_t>(RngPurpose::kSignsIn)}).signs(n);
  s.sv = unit_stream.stream({static_cast<uint64_t>(RngPurpose::kSignsOut)}).signs(m);
  return s;
}

Matrix<float> rht_weight(Backend& be, MatrixView<const float> w, const RhtSigns& signs) {
  const int64_t m = w.rows, n = w.cols;
  const HadamardFactor fm = hadamard_factor(m), fn = hadamard_factor(n);
  auto su = upload_signs(be, signs.su, n, "SU");
  auto sv = upload_signs(be, signs.sv, m, "SV");
  auto a = be.clone(w, "rht W D_SU Had_n");
  be.quant().hadamard_rows(a.view(), fn, Op::kTrans, su.cview(), {});  // rows: (w ⊙ SU) Had_n
  auto at = be.make<float>(n, m, "rht transpose");
  be.transpose(a.cview(), at.view());
  be.quant().hadamard_rows(at.view(), fm, Op::kTrans, sv.cview(), {});  // (Had_mᵀ D_SV A)ᵀ
  be.transpose(at.cview(), a.view());
  return a;
}

Matrix<float> rht_weight_inverse(Backend& be, MatrixView<const float> w_r, const RhtSigns& signs) {
  const int64_t m = w_r.rows, n = w_r.cols;
  const HadamardFactor fm = hadamard_factor(m), fn = hadamard_factor(n);
  auto su = upload_signs(be, signs.su, n, "SU");
  auto sv = upload_signs(be, signs.sv, m, "SV");
  auto a = be.clone(w_r, "rht inverse W_r Had_nᵀ D_SU");
  be.quant().hadamard_rows(a.view(), fn, Op::kNoTrans, {}, su.cview());  // rows: (Had_n r) ⊙ SU
  auto at = be.make<float>(n, m, "rht inverse transpose");
  be.transpose(a.cview(), at.view());
  be.quant().hadamard_rows(at.view(), fm, Op::kNoTrans, {}, sv.cview());  // (D_SV Had_m A)ᵀ
  be.transpose(at.cview(), a.view());
  return a;
}

Matrix<float> rht_hessian(Backend& be, MatrixView<const float> h, const RhtSigns& signs) {
  const int64_t n = h.rows;
  CALDERA_CHECK(h.cols == n, "rht_hessian: square matrix expected, got ", h.rows, "x", h.cols);
  const HadamardFactor fn = hadamard_factor(n);
  auto su = upload_signs(be, signs.su, n, "SU");
  auto a = be.clone(h, "rht H D_SU Had_n");
  be.quant().hadamard_rows(a.view(), fn, Op::kTrans, su.cview(), {});  // A = H D Had_n
  auto b = be.make<float>(n, n, "rht Had_nᵀ D_SU H");
  be.transpose(a.cview(), b.view());                                     // B = Aᵀ = Had_nᵀ D H
  be.quant().hadamard_rows(b.view(), fn, Op::kTrans, su.cview(), {});    // B D Had_n = H_r (up to rounding)
  be.transpose(b.cview(), a.view());
  be.axpby(0.5f, b.cview(), 0.5f, a.view());                             // exact symmetry
  return a;
}

}  // namespace caldera::quant
