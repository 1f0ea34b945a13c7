// Exact nearest-codeword search on the device with the tables in shared memory: one thread per
// vector (SmemE8pNearest, bulk encoding) or one warp per vector (warp_*, the LDLQ panel kernel).
//
// Warp search: every lane holds the same 8-vector. E8P: lanes 0-15 take shift +¼, lanes 16-31
// shift −¼; lane l scores patterns (l mod 16) + 16q, q = 0..15, with e8p::e8p_key_from_coeffs (the
// arithmetic of e8p::e8p_candidate_key, hence the same bits as the host search). Half-warp
// reductions keep (smallest key, then lowest pattern), and the shift rule of core/e8p_tables.h
// picks the winner, so the code equals e8p::e8p_nearest(x) exactly. E81B: lane l scores entries l + 32q, arg-max with ties to the lowest
// index, equal to e8p::e81b_nearest. All lanes of the warp must call these functions together.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/e8p_tables.h"

namespace caldera::kernels {

constexpr unsigned kFullMask = 0xffffffffu;

/// Tables in shared memory (filled by the block before use): per pattern a the coefficients
/// c[i][a] = 2·a_i as doubles (transposed, so lanes reading different patterns hit different
/// banks), Σ c_i², the parity flag, and the packed words.
struct LatticeSmemTables {
  double c[8][256];
  double nc2[256];
  uint32_t need_odd[256];
  uint32_t packed_abs[256];
  uint32_t e81b[256];
};

/// Fills the tables from the device copies of core/e8p_tables.h (all threads of the block call it;
/// synchronizes).
__device__ inline void load_lattice_tables(LatticeSmemTables& t) {
  for (int a = threadIdx.x + threadIdx.y * blockDim.x; a < 256; a += blockDim.x * blockDim.y) {
    const uint32_t w = e8p::packed_abs(a);
    int nc2 = 0;
    for (int i = 0; i < 8; ++i) {
      const int c = e8p::e8p_coeff(w, i);
      t.c[i][a] = static_cast<double>(c);
      nc2 += c * c;
    }
    t.nc2[a] = static_cast<double>(nc2);
    t.need_odd[a] = e8p::e8p_need_odd(w);
    t.packed_abs[a] = w;
    t.e81b[a] = e8p::e81b_packed(a);
  }
  __syncthreads();
}

/// e8p::e8p_candidate_key of pattern a from the shared tables (same arithmetic, same bits).
__device__ inline double smem_e8p_key(const LatticeSmemTables& tab, const e8p::E8pShift& sh, int a) {
  return e8p::e8p_key_from_coeffs(sh, &tab.c[0][a], 256, tab.nc2[a], tab.need_odd[a]);
}

/// One thread's exact search over all 512 candidates (for kernels with one vector per thread);
/// equals e8p::e8p_nearest. Usable as the `nearest` of e8p::lattice_encode8_with.
struct SmemE8pNearest {
  const LatticeSmemTables& tab;
  __device__ uint32_t operator()(const float x[8]) const {
    double best_key[2];
    int best_a[2];
    for (int t = 0; t < 2; ++t) {
      const e8p::E8pShift sh = e8p::e8p_prepare_shift(x, t);
      best_key[t] = smem_e8p_key(tab, sh, 0);
      best_a[t] = 0;
      for (int a = 1; a < 256; ++a) {
        const double k = smem_e8p_key(tab, sh, a);
        if (k < best_key[t]) {
          best_key[t] = k;
          best_a[t] = a;
        }
      }
    }
    const int t = e8p::rn::sub(best_key[0], best_key[1]) <= e8p::e8p_sum_x4(x) ? 0 : 1;
    return e8p::e8p_make_code(e8p::e8p_prepare_shift(x, t), best_a[t], tab.packed_abs[best_a[t]], t);
  }
};

__device__ inline uint32_t warp_e8p_nearest(const LatticeSmemTables& tab, const float x[8]) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int shift = lane >> 4;
  const e8p::E8pShift sh = e8p::e8p_prepare_shift(x, shift);
  double best = 0.0;
  int best_a = -1;
  for (int q = 0; q < 16; ++q) {
    const int a = (lane & 15) + 16 * q;
    const double k = smem_e8p_key(tab, sh, a);
    if (best_a < 0 || k < best) {
      best = k;
      best_a = a;
    }
  }
  for (int off = 8; off > 0; off >>= 1) {
    const double ok = __shfl_xor_sync(kFullMask, best, off);
    const int oa = __shfl_xor_sync(kFullMask, best_a, off);
    if (ok < best || (ok == best && oa < best_a)) {
      best = ok;
      best_a = oa;
    }
  }
  const double key_plus = __shfl_sync(kFullMask, best, 0), key_minus = __shfl_sync(kFullMask, best, 16);
  const int a_plus = __shfl_sync(kFullMask, best_a, 0), a_minus = __shfl_sync(kFullMask, best_a, 16);
  const int t = e8p::rn::sub(key_plus, key_minus) <= e8p::e8p_sum_x4(x) ? 0 : 1;
  const int a = t == 0 ? a_plus : a_minus;
  const e8p::E8pShift win = e8p::e8p_prepare_shift(x, t);
  return e8p::e8p_make_code(win, a, tab.packed_abs[a], t);
}

__device__ inline uint32_t warp_e81b_nearest(const LatticeSmemTables& tab, const float r[8]) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  double best = 0.0;
  int best_g = -1;
  for (int q = 0; q < 8; ++q) {
    const int g = lane + 32 * q;
    const double s = e8p::e81b_score(r, tab.e81b[g]);
    if (best_g < 0 || s > best) {
      best = s;
      best_g = g;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    const double os = __shfl_xor_sync(kFullMask, best, off);
    const int og = __shfl_xor_sync(kFullMask, best_g, off);
    if (os > best || (os == best && og < best_g)) {
      best = os;
      best_g = og;
    }
  }
  return static_cast<uint32_t>(best_g);
}

/// Warp version of e8p::lattice_encode8: same code, same x̂ in every lane.
__device__ inline uint32_t warp_lattice_encode8(const LatticeSmemTables& tab, LatticeCodebook cb, float residual_scale,
                                                const float x[8], float xhat[8]) {
  const uint32_t c1 = warp_e8p_nearest(tab, x);
  if (cb == LatticeCodebook::kE8P12) {
    e8p::e8p_decode(c1, xhat);
    return c1;
  }
  float v1[8], r[8], v2[8];
  e8p::e8p_decode(c1, v1);
  e8p::rvq_residual(x, v1, residual_scale, r);
  uint32_t c2;
  if (cb == LatticeCodebook::kE8P12RVQ4B) {
    c2 = warp_e8p_nearest(tab, r);
    e8p::e8p_decode(c2, v2);
  } else {
    c2 = warp_e81b_nearest(tab, r);
    e8p::e81b_decode(c2, v2);
  }
  e8p::rvq_combine(v1, v2, residual_scale, xhat);
  return (c1 << 16) | c2;
}

}  // namespace caldera::kernels
