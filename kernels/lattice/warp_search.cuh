// Warp-cooperative exact nearest-codeword search (device only), used by the LDLQ panel kernel.
//
// Every lane holds the same 8-vector. E8P: lanes 0-15 take shift +¼, lanes 16-31 shift −¼; lane l
// scores patterns (l mod 16) + 16q, q = 0..15, with e8p::e8p_candidate_key — the same function,
// hence the same bits, as the host search. Half-warp reductions keep (smallest key, then lowest
// pattern), and the shift rule of core/e8p_tables.h picks the winner, so the code equals
// e8p::e8p_nearest(x) exactly. E81B: lane l scores entries l + 32q, arg-max with ties to the lowest
// index, equal to e8p::e81b_nearest. All lanes of the warp must call these functions together.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/e8p_tables.h"

namespace caldera::kernels {

constexpr unsigned kFullMask = 0xffffffffu;

/// Packed tables in shared memory (filled by the block before use).
struct LatticeSmemTables {
  uint32_t packed_abs[256];
  uint32_t e81b[256];
};

/// Fills the tables from the device copies of core/e8p_tables.h (all threads of the block call it;
/// synchronizes).
__device__ inline void load_lattice_tables(LatticeSmemTables& t) {
  for (int i = threadIdx.x + threadIdx.y * blockDim.x; i < 256; i += blockDim.x * blockDim.y) {
    t.packed_abs[i] = e8p::packed_abs(i);
    t.e81b[i] = e8p::e81b_packed(i);
  }
  __syncthreads();
}

__device__ inline uint32_t warp_e8p_nearest(const LatticeSmemTables& tab, const float x[8]) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int shift = lane >> 4;
  const e8p::E8pShift sh = e8p::e8p_prepare_shift(x, shift);
  double best = 0.0;
  int best_a = -1;
  for (int q = 0; q < 16; ++q) {
    const int a = (lane & 15) + 16 * q;
    const double k = e8p::e8p_candidate_key(sh, tab.packed_abs[a]);
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
