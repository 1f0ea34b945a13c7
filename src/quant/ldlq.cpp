// LDLQ driver (spec §3.5, panel form of §3.6); see ldlq.h for the recurrences.
#include "quant/ldlq.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/lattice.h"

namespace caldera::quant {

using linalg::Backend;
using linalg::LdlqPanelArgs;
using linalg::Matrix;
using linalg::Op;

namespace {

void run_panel(Backend& be, const LdlqPanelArgs& args, const LdlqQuantizer& q, LdlqResult& r, int64_t c0) {
  const int64_t w = args.base.cols;
  if (q.kind == LdlqQuantizer::Kind::kLattice) {
    be.quant().ldlq_panel_lattice(args, q.codebook, q.residual_scale, r.codes.view().cols_range(c0 / 8, w / 8));
  } else {
    linalg::ScalarGrid g = q.grid;
    g.col_offset = q.grid.col_offset + c0;
    be.quant().ldlq_panel_scalar(args, g, r.scalar_codes.view().cols_range(c0, w));
  }
}

}  // namespace

LdlqResult ldlq(Backend& be, MatrixView<const float> x, MatrixView<const float> h, const BlockLdl& ldl,
                const LdlqQuantizer& quantizer, int tune_iters) {
  const int64_t m = x.rows, n = x.cols;
  CALDERA_CHECK(n % kLdlBlock == 0 && n > 0 && m > 0, "ldlq: X must be m x n with n % 8 == 0, got ", m, "x", n);
  CALDERA_CHECK(h.rows == n && h.cols == n, "ldlq: H' must be ", n, "x", n, ", got ", h.rows, "x", h.cols);
  CALDERA_CHECK(ldl.l.rows() == n && ldl.hjj_inv.rows() == n, "ldlq: block LDL of a ", ldl.l.rows(), "x",
                ldl.l.cols(), " matrix does not match n = ", n);
  CALDERA_CHECK(tune_iters >= 0, "ldlq: tune_iters must be >= 0, got ", tune_iters);

  LdlqResult r;
  r.what = be.make<float>(m, n, "ldlq What");
  if (quantizer.kind == LdlqQuantizer::Kind::kLattice)
    r.codes = be.make<uint32_t>(m, n / 8, "ldlq codes");
  else
    r.scalar_codes = be.make<uint8_t>(m, n, "ldlq scalar codes");

  const int64_t n_panels = (n + kLdlqPanelCols - 1) / kLdlqPanelCols;
  auto resid = be.make<float>(m, n, "ldlq X - What");  // R = X − Ŵ
  {
    // Initial pass: F accumulates (X − Ŵ)_panel 𝐋[panel, left of it] for the panels still to come.
    auto f = be.make<float>(m, n, "ldlq feedback");
    be.fill(f.view(), 0.0f);
    for (int64_t p = n_panels - 1; p >= 0; --p) {
      const int64_t c0 = p * kLdlqPanelCols, w = std::min(kLdlqPanelCols, n - c0);
      LdlqPanelArgs a;
      a.base = x.cols_range(c0, w);
      a.acc = f.cview().cols_range(c0, w);
      a.mix = ldl.l.cview().block(c0, c0, w, w);
      a.what = r.what.view().cols_range(c0, w);
      a.delta = resid.view().cols_range(c0, w);
      run_panel(be, a, quantizer, r, c0);
      if (c0 > 0)
        be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, resid.cview().cols_range(c0, w), ldl.l.cview().block(c0, 0, w, c0),
                1.0f, f.view().cols_range(0, c0));
    }
  }
  if (tune_iters > 0) {
    const int64_t pw = std::min(kLdlqPanelCols, n);
    auto pbuf = be.make<float>(m, pw, "ldlq (X - What) H'[:, panel]");
    auto dbuf = be.make<float>(m, pw, "ldlq panel delta");
    for (int it = 0; it < tune_iters; ++it)
      for (int64_t p = n_panels - 1; p >= 0; --p) {
        const int64_t c0 = p * kLdlqPanelCols, w = std::min(kLdlqPanelCols, n - c0);
        auto pv = pbuf.view().cols_range(0, w);
        auto dv = dbuf.view().cols_range(0, w);
        be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, resid.cview(), h.cols_range(c0, w), 0.0f, pv);
        LdlqPanelArgs a;
        a.base = r.what.cview().cols_range(c0, w);
        a.acc = pv;
        a.mix = h.block(c0, c0, w, w);
        a.block_inv = ldl.hjj_inv.cview().rows_range(c0, w);
        a.what = r.what.view().cols_range(c0, w);
        a.delta = dv;
        run_panel(be, a, quantizer, r, c0);
        // X − Ŵ_new = (X − Ŵ_old) + (Ŵ_old − Ŵ_new)
        be.axpby(1.0f, MatrixView<const float>(dv), 1.0f, resid.view().cols_range(c0, w));
      }
  }
  return r;
}

double proxy_loss(Backend& be, MatrixView<const float> w, MatrixView<const float> what, MatrixView<const float> h) {
  CALDERA_CHECK(same_shape(w, what) && h.rows == w.cols && h.cols == w.cols, "proxy_loss: W ", w.rows, "x", w.cols,
                ", What ", what.rows, "x", what.cols, ", H ", h.rows, "x", h.cols);
  auto e = be.clone(w, "proxy_loss E");
  be.axpby(-1.0f, what, 1.0f, e.view());
  auto eh = be.make<float>(w.rows, w.cols, "proxy_loss E H");
  be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, e.cview(), h, 0.0f, eh.view());
  return be.dot(eh.cview(), e.cview());
}

LatticeLdlq ldlq_lattice_scaled(Backend& be, MatrixView<const float> a, MatrixView<const float> h, const BlockLdl& ldl,
                                const LatticeLdlqOptions& options) {
  const float rho = options.input_rms > 0.0f ? options.input_rms : lattice_opt_scale(options.codebook);
  const double s = rms(be, a);
  LatticeLdlq out;
  auto x = be.clone(a, "ldlq scaled X");
  // A zero residual quantizes zeros and comes back as exactly 0 (scale 0).
  if (s > 0.0) be.scale(x.view(), static_cast<float>(rho / s));
  LdlqResult r = ldlq(be, x.cview(), h, ldl, LdlqQuantizer::lattice(options.codebook), options.tune_iters);
  out.scale = static_cast<float>(s / rho);
  out.q = std::move(r.what);
  be.scale(out.q.view(), out.scale);
  out.codes = std::move(r.codes);
  return out;
}

}  // namespace caldera::quant
