// CalderaMethod::estimate (caldera-dist plan): a replay of the allocations of CalderaMethod::compress
// (algo/caldera.cpp), lr_init / lplr (low_rank.cpp), hessian_downdate (downdate.cpp), block_ldl and
// ldlq (quant/ldl.cpp, quant/ldlq.cpp) and the factor quantizers (factor_quant.cpp), in program
// order and with the same scopes, on a MemoryTally; and the operation counts of one compress() per
// spec caldera-quipsharp.md §1.2 (outer loop), §2 (LR update), §3 (Q update) and the cost table of
// §8. Entries that are O(m + n) (signs, diagonals, scales) are left out; everything of size k·m,
// k·n, m·n or n² is counted. When compress() changes its buffers, this file changes with it; the
// integration test e2e_plan_memory (tests/integration/test_e2e_plan_memory.py) compares both.
#include <algorithm>

#include "algo/caldera.h"

namespace caldera::algo {
namespace {

using Hold = MemoryTally::Hold;
using linalg::BackendKind;

/// Sizes of the factor representation (QuantizedFactor / fp16 values).
struct FactorShape {
  bool quantized = false;  ///< false: fp16 factors (values only)
  bool lattice = false;    ///< E8P codes (else uniform grid codes)
  bool per_row = false;    ///< per-row scales
  int bits = 16;

  int64_t bytes(int64_t rows, int64_t cols) const {
    if (!quantized) return rows * cols * 4;
    if (lattice) return rows * cols * 4 + rows * cols / 2 + (per_row ? rows * 4 : 4);
    return rows * cols * 4 + rows * cols + 2 * rows * 4;
  }
};

/// quant::block_ldl(h) for n×n h: the factor (kept by the caller) and its transients.
struct LdlHolds {
  Hold l, d, hjj_inv;
};

LdlHolds replay_block_ldl(MemoryTally& t, int64_t n, WorkEstimate& work) {
  LdlHolds out;
  out.l = t.backend(n, n, 4);
  {
    auto tb = t.host(n, 8, 4);
    auto d = t.host(n, 8, 4);
    auto tinv = t.host(n, 8, 4);
    {
      auto tmp = t.backend(n, std::min<int64_t>(n, 128), 4);
      auto bd = t.host(128, 128, 4);
      auto bd_dev = t.backend(128, 128, 4);
    }
    auto eye = t.host(n, 8, 4);
    auto hb = t.host(n, 8, 4);
    auto hinv = t.host(n, 8, 4);
    out.d = t.backend(n, 8, 4);
    out.hjj_inv = t.backend(n, 8, 4);
  }
  const double nd = static_cast<double>(n);
  work.cholesky_n3 += nd * nd * nd;
  work.gemm_flops += 2.0 * 128.0 * nd * nd / 2.0;
  work.memory_bytes += 4.0 * 4.0 * nd * nd;
  return out;
}

/// quant::ldlq on an m×n input: returns (What, codes) holds; `codes_bytes_per_entry_x8` is the code
/// storage of 8 entries (4 bytes for lattice codes).
struct LdlqHolds {
  Hold what, codes;
};

LdlqHolds replay_ldlq(MemoryTally& t, int64_t m, int64_t n, int tune_iters, WorkEstimate& work) {
  LdlqHolds r;
  r.what = t.backend(m, n, 4);
  r.codes = t.backend(m, n / 8, 4);
  auto resid = t.backend(m, n, 4);
  {
    auto f = t.backend(m, n, 4);
  }
  if (tune_iters > 0) {
    auto pbuf = t.backend(m, std::min<int64_t>(128, n), 4);
    auto dbuf = t.backend(m, std::min<int64_t>(128, n), 4);
  }
  const double mn = static_cast<double>(m) * static_cast<double>(n);
  work.gemm_flops += (1.0 + 2.0 * tune_iters) * mn * static_cast<double>(n);
  work.rounded_weights += (1.0 + tune_iters) * mn;
  work.memory_bytes += (3.0 + 3.0 * tune_iters) * 4.0 * mn;
  return r;
}

/// The fp64 Gram matrix of a rows×n fp32 input (gram_cols_f64 / gram_accumulate): widening buffer.
void replay_gram(MemoryTally& t, BackendKind kind, int64_t rows, int64_t n, WorkEstimate& work) {
  touch_gram_widen(t, kind, rows, n);
  work.fp64_flops += static_cast<double>(rows) * static_cast<double>(n) * static_cast<double>(n);
}

/// Eigendecomposition with eigenvectors of an n×n fp64 matrix (top_eigenvectors): w, workspace, top.
void replay_top_eigenvectors(MemoryTally& t, BackendKind kind, int64_t n, int64_t k, Hold& top, WorkEstimate& work) {
  auto w = t.backend(1, n, 8);
  touch_eigh_workspace(t, kind, n, 8);
  top = t.backend(k, n, 8);
  const double nd = static_cast<double>(n);
  work.eigh_f64_n3 += nd * nd * nd;
}

struct PairHolds {
  Hold l, r;
};

/// lr_init (spec §2.1) for an m×n problem of rank k.
PairHolds replay_lr_init(MemoryTally& t, BackendKind kind, int64_t m, int64_t n, int64_t k, const CalderaParams& p,
                         WorkEstimate& work) {
  PairHolds out;
  const double md = static_cast<double>(m), nd = static_cast<double>(n), kd = static_cast<double>(k);
  if (p.lr_svd == LrSvdSolver::kExact) {
    out.l = t.backend(m, k, 4);
    if (m <= n) {
      auto g = t.backend(m, m, 8);
      {
        auto xt = t.backend(n, m, 4);
        replay_gram(t, kind, n, m, work);
      }
      Hold top;
      replay_top_eigenvectors(t, kind, m, k, top, work);
      auto top32 = t.backend(k, m, 4);
    } else {
      auto g = t.backend(n, n, 8);
      replay_gram(t, kind, m, n, work);
      Hold top;
      replay_top_eigenvectors(t, kind, n, k, top, work);
      auto top32 = t.backend(k, n, 4);
      work.gemm_flops += 2.0 * md * nd * kd + 4.0 * md * kd * kd;
    }
  } else {
    const int64_t q = std::min<int64_t>(2 * k, std::min(m, n));
    const double qd = static_cast<double>(q);
    auto omega = t.backend(n, q, 4);
    auto y = t.backend(m, q, 4);
    auto z = t.backend(n, q, 4);
    auto b = t.backend(q, n, 4);
    auto g = t.backend(q, q, 8);
    {
      auto xt = t.backend(n, q, 4);
      replay_gram(t, kind, n, q, work);
    }
    Hold top;
    replay_top_eigenvectors(t, kind, q, k, top, work);
    auto top32 = t.backend(k, q, 4);
    out.l = t.backend(m, k, 4);
    // Range finder with power iterations (kRandomizedPowerIters = 2), projections and QRs.
    work.gemm_flops += 2.0 * md * nd * qd * (2.0 + 2.0 * 2.0) + 2.0 * md * qd * kd + 4.0 * (md + nd) * qd * qd * 3.0;
  }
  out.r = t.backend(k, n, 4);
  work.gemm_flops += 2.0 * md * nd * kd;
  if (p.lr_split == LrSplit::kBalanced) {
    auto g = t.backend(k, k, 8);
    auto xt = t.backend(n, k, 4);
    replay_gram(t, kind, n, k, work);
  }
  return out;
}

/// One quantization of a rows×cols factor into an existing QuantizedFactor (same shape: no
/// reallocation), with its transients.
void replay_quantize_factor(MemoryTally& t, int64_t rows, int64_t cols, const FactorShape& f, WorkEstimate& work) {
  if (f.lattice && f.per_row) t.touch(MemorySpace::kBackend, rows * rows * 4);
  if (!f.lattice) t.touch(MemorySpace::kBackend, 2 * rows * 4);
  work.rounded_weights += static_cast<double>(rows) * static_cast<double>(cols);
  work.memory_bytes += 3.0 * 4.0 * static_cast<double>(rows) * static_cast<double>(cols);
}

struct LplrHolds {
  Hold l_t, r, l;
};

/// lplr (spec §2.3) with quantized factors; the init pair is alive throughout.
LplrHolds replay_lplr(MemoryTally& t, BackendKind kind, int64_t m, int64_t n, int64_t k, const CalderaParams& p,
                      const FactorShape& f, WorkEstimate& work) {
  const double md = static_cast<double>(m), nd = static_cast<double>(n), kd = static_cast<double>(k);
  LplrHolds best;
  best.l = t.backend(m, k, 4);
  auto l_t = t.hold(MemorySpace::kBackend, f.bytes(k, m));
  auto l = t.backend(m, k, 4);
  auto l_t_raw = t.backend(k, m, 4);
  auto r_raw = t.backend(k, n, 4);
  auto l_gram = t.backend(k, k, 8);
  auto r_white = t.backend(k, n, 4);
  auto ar_t = t.backend(m, k, 4);
  auto r_gram = t.backend(k, k, 8);
  auto quantize_r = [&](Hold* r_factor, WorkEstimate& w) {
    if (r_factor->bytes() == 0) *r_factor = t.hold(MemorySpace::kBackend, f.bytes(k, n));
    if (p.factor_rounding == FactorRounding::kLdlq && f.lattice) {
      const LdlqHolds res = replay_ldlq(t, k, n, p.tune_iters, w);
    } else {
      replay_quantize_factor(t, k, n, f, w);
    }
  };
  auto rside_update = [&](WorkEstimate& w) {
    auto xt = t.backend(n, k, 4);
    replay_gram(t, kind, n, k, w);
    w.gemm_flops += 2.0 * kd * nd * nd + 2.0 * md * nd * kd;
  };
  auto evaluate = [&](bool first, WorkEstimate& w) {
    rside_update(w);
    replay_gram(t, kind, m, k, w);
    if (first) {
      best.l_t = t.hold(MemorySpace::kBackend, f.bytes(k, m));
      best.r = t.hold(MemorySpace::kBackend, f.bytes(k, n));
    }
  };
  Hold r_factor;
  replay_quantize_factor(t, k, m, f, work);
  quantize_r(&r_factor, work);
  evaluate(true, work);
  rside_update(work);
  // Every iteration allocates the same transients: replay one, count the work of all.
  if (p.lplr_iters > 0) {
    WorkEstimate one;
    {  // L step: solve_spd_right
      auto c = t.backend(k, k, 8);
      auto x = t.backend(m, k, 8);
      one.fp64_flops += 2.0 * md * kd * kd + kd * kd * kd / 3.0;
    }
    replay_quantize_factor(t, k, m, f, one);
    replay_gram(t, kind, m, k, one);
    one.gemm_flops += 2.0 * kd * md * nd;
    {  // R step: solve_spd_left
      auto c = t.backend(k, k, 8);
      auto x = t.backend(k, n, 8);
      one.fp64_flops += 2.0 * nd * kd * kd + kd * kd * kd / 3.0;
    }
    quantize_r(&r_factor, one);
    evaluate(false, one);
    work += one.scaled(static_cast<double>(p.lplr_iters));
  }
  return best;
}

}  // namespace

UnitEstimate CalderaMethod::estimate(int64_t m, int64_t n, BackendKind kind) const {
  const CalderaParams& p = params_;
  const int64_t k = p.rank;
  const double md = static_cast<double>(m), nd = static_cast<double>(n), kd = static_cast<double>(k);
  const double mn = md * nd;
  FactorShape f;
  f.quantized = k > 0 && p.bits_lr != 16;
  f.lattice = f.quantized && p.factor_format == FactorFormat::kE8p;
  f.per_row = f.quantized && p.factor_scales == FactorScaleMode::kPerRow;
  f.bits = p.bits_lr;
  const bool rht = p.incoherence == Incoherence::kRht;
  const bool ldlq_q = p.q_rounding == QRounding::kLdlq;
  const bool downdate = k > 0 && p.downdate == DowndateMode::kOn && ldlq_q;

  UnitEstimate e;
  WorkEstimate once, per_iter;
  MemoryTally t;
  // Spec §6.5 Hessian (host fp64, then fp32), global scale, RHT (§4).
  auto h64 = t.host(n, n, 8);
  auto h32 = t.host(n, n, 4);
  once.memory_bytes += 3.0 * 8.0 * nd * nd;
  auto w0 = t.backend(m, n, 4);
  Hold w, h, signs;
  if (rht) {
    signs = t.host(1, m + n, 4);
    {
      w = t.backend(m, n, 4);
      auto at = t.backend(n, m, 4);
    }
    {
      auto h0 = t.backend(n, n, 4);
      h = t.backend(n, n, 4);
      auto b = t.backend(n, n, 4);
    }
    once.memory_bytes += 4.0 * 4.0 * (3.0 * mn + 4.0 * nd * nd);
  } else {
    w = std::move(w0);
    h = t.backend(n, n, 4);
  }
  Hold chol;
  if (k > 0) {
    chol = t.backend(n, n, 4);
    once.cholesky_n3 += nd * nd * nd;
  }
  auto meter_diff = t.backend(m, n, 4);
  auto meter_diff_h = t.backend(m, n, 4);
  once.gemm_flops += 2.0 * mn * nd;
  LdlHolds h_ldl;
  if (f.lattice && p.factor_rounding == FactorRounding::kLdlq) h_ldl = replay_block_ldl(t, n, once);

  // Loop state: zeros(m, n, k), then the factors as lplr returns them.
  auto q = t.backend(m, n, 4);
  auto q_codes = t.backend(m, n / 8, 4);
  auto st_lt = t.backend(k, m, 4);
  auto st_r = t.backend(k, n, 4);
  auto st_l = t.backend(m, k, 4);
  Hold best;
  auto w_hat = t.backend(m, n, 4);
  auto residual = t.backend(m, n, 4);
  Hold residual_white = k > 0 ? t.backend(m, n, 4) : Hold();
  Hold h_down = downdate ? t.backend(n, n, 4) : Hold();
  const int64_t state_factor_bytes = k > 0 ? f.bytes(k, m) + f.bytes(k, n) + m * k * 4 : 0;

  // Two outer iterations reach every allocation pattern (the best iterate exists from the end of
  // the first); the work of one iteration is counted once and multiplied.
  const int replayed = std::min(p.iters, 2);
  for (int it = 0; it < replayed; ++it) {
    WorkEstimate w_it;
    if (k > 0) {
      w_it.memory_bytes += 4.0 * 4.0 * mn;
      w_it.gemm_flops += 2.0 * mn * nd;
      PairHolds init = replay_lr_init(t, kind, m, n, k, p, w_it);
      if (!f.quantized) {
        w_it.memory_bytes += 4.0 * 4.0 * kd * (md + nd);
      } else {
        LplrHolds res = replay_lplr(t, kind, m, n, k, p, f, w_it);
        st_lt = std::move(res.l_t);
        st_r = std::move(res.r);
        st_l = std::move(res.l);
      }
      if (it > 0) w_it.gemm_flops += 2.0 * md * kd * nd + 2.0 * mn * nd;  // record()
    }
    // Q update (spec §3).
    w_it.memory_bytes += 2.0 * 4.0 * mn;
    if (k > 0) w_it.gemm_flops += 2.0 * md * kd * nd;
    if (!ldlq_q) {
      Hold xhat = t.backend(m, n, 4);
      Hold codes = t.backend(m, n / 8, 4);
      q_codes = std::move(codes);
      w_it.rounded_weights += mn;
    } else {
      if (downdate) {
        auto r_white = t.backend(k, n, 4);
        auto basis = t.backend(n, k, 4);
        auto pp = t.backend(n, k, 4);
        w_it.gemm_flops += 2.0 * kd * nd * nd * 3.0 + 4.0 * nd * kd * kd;
        if (p.downdate_ridge == DowndateRidge::kExact) {
          auto work = t.backend(n, n, 4);
          auto vals = t.backend(1, n, 4);
          touch_eigh_workspace(t, kind, n, 4);
          w_it.eigh_f32_n3 += nd * nd * nd;
        }
      }
      LdlHolds ldl = replay_block_ldl(t, n, w_it);
      auto x = t.backend(m, n, 4);
      LdlqHolds res = replay_ldlq(t, m, n, p.tune_iters, w_it);
      x.release();
      q_codes = std::move(res.codes);
    }
    w_it.gemm_flops += 2.0 * md * kd * nd + 2.0 * mn * nd;  // record()
    if (best.bytes() == 0) best = t.hold(MemorySpace::kBackend, m * n * 4 + m * n / 2 + state_factor_bytes);
    // Checkpoint after the iteration (host): both states packed, plus the download of one.
    {
      const int64_t packed_q = m * n * p.bits_q / 8;
      const int64_t packed_lr = k > 0 ? (f.quantized ? k * (m + n) * p.bits_lr / 8 : k * (m + n) * 2) : 0;
      auto ckpt = t.host(1, 2 * (packed_q + packed_lr), 1);
      t.touch(MemorySpace::kHost, m * n / 2 + 2 * packed_q);
      e.checkpoint_bytes = 2 * (packed_q + packed_lr);
    }
    if (it == 0) per_iter = w_it;
  }
  // The stored tensors of the best iterate (store_state on the host).
  const int64_t result = m * n * p.bits_q / 8 + (k > 0 ? (f.quantized ? k * (m + n) * p.bits_lr / 8 : k * (m + n) * 2) : 0);
  {
    auto tensors = t.host(1, result + (m + n) * 4, 1);
    t.touch(MemorySpace::kHost, m * n / 2 + m * n * p.bits_q / 8);
  }
  e.memory = t.peaks();
  e.work = once;
  e.work += per_iter.scaled(static_cast<double>(p.iters));
  e.checkpoints = p.iters;
  e.result_bytes = result + (m + n) * 4;
  return e;
}

}  // namespace caldera::algo
