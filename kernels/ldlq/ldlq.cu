// Kernel family "ldlq" (kernels/include/kernels/ldlq.h): one LDLQ panel, one warp per row.
//
// Block: kWarps warps = kWarps rows. Shared memory: M (w × (w+8), padded so the 4 row-groups of a
// feedback step hit distinct banks), N (w × 8), the lattice tables, and per warp the row's B and Δ
// (128 floats each). Per block step j the lanes (c = lane mod 8, part = lane / 8) sum
// Δ[q] M[q][8j+c] over q ≡ part (mod 4), combine the 4 parts with two xor-shuffles, broadcast the 8
// values, apply N_j, then round: a warp-wide exact lattice search or the scalar grid.
// Variants (one dispatch switch): lattice E8P12 / RVQ3B / RVQ4B, scalar.
// Constraints: 8 ≤ w ≤ 128, w % 8 == 0; about 109 KiB of shared memory per block (opt-in; two
// blocks, 32 warps, per H100 SM).
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "kernels/ldlq.h"
#include "lattice/warp_search.cuh"

namespace caldera::kernels {
namespace {

constexpr int kWarps = 16;
constexpr int kMaxPanel = 128;

struct Variant {
  LdlqRounding rounding;
  LatticeCodebook codebook;
};

size_t smem_bytes(int64_t w) {
  return sizeof(LatticeSmemTables) +
         sizeof(float) * static_cast<size_t>(w * (w + 8) + w * 8 + kWarps * 2 * kMaxPanel);
}

template <LdlqRounding kRound, LatticeCodebook kCb>
__global__ void __launch_bounds__(kWarps * 32, 2) ldlq_panel_kernel(LdlqPanelArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& tab = *reinterpret_cast<LatticeSmemTables*>(smem_raw);
  float* mix = reinterpret_cast<float*>(smem_raw + sizeof(LatticeSmemTables));
  const int64_t w = a.base.cols, ldm = w + 8, nb = w / 8;
  float* ninv = mix + w * ldm;
  const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
  float* base_s = ninv + w * 8 + warp * 2 * kMaxPanel;
  float* delta_s = base_s + kMaxPanel;
  const bool has_inv = a.block_inv.data != nullptr;

  if constexpr (kRound == LdlqRounding::kLattice) load_lattice_tables(tab);
  for (int64_t t = threadIdx.x; t < w * w; t += blockDim.x) {
    const int64_t q = t / w, c = t - q * w;
    mix[q * ldm + c] = a.mix.data[q * a.mix.ld + c];
  }
  if (has_inv)
    for (int64_t t = threadIdx.x; t < w * 8; t += blockDim.x)
      ninv[t] = a.block_inv.data[(t / 8) * a.block_inv.ld + (t % 8)];
  __syncthreads();

  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (row >= a.base.rows) return;
  const float* brow = a.base.data + row * a.base.ld;
  const float* arow = a.acc.data + row * a.acc.ld;
  for (int64_t i = lane; i < w; i += 32) base_s[i] = brow[i];
  __syncwarp();

  const int c = lane & 7, part = lane >> 3;
  for (int64_t j = nb - 1; j >= 0; --j) {
    float s = 0.0f;
    for (int64_t q = 8 * (j + 1) + part; q < w; q += 4) s = __fmaf_rn(delta_s[q], mix[q * ldm + 8 * j + c], s);
    s += __shfl_xor_sync(kFullMask, s, 8);
    s += __shfl_xor_sync(kFullMask, s, 16);
    const float fc = arow[8 * j + c] + s;
    float f[8], t[8];
    for (int k = 0; k < 8; ++k) f[k] = __shfl_sync(kFullMask, fc, k);
    for (int k = 0; k < 8; ++k) {
      float u = f[k];
      if (has_inv) {
        u = 0.0f;
        for (int q = 0; q < 8; ++q) u = __fmaf_rn(f[q], ninv[(8 * j + q) * 8 + k], u);
      }
      t[k] = base_s[8 * j + k] + u;
    }
    float out[8];
    if constexpr (kRound == LdlqRounding::kLattice) {
      const uint32_t code = warp_lattice_encode8(tab, kCb, a.residual_scale, t, out);
      if (lane == 0) a.lattice_codes.data[row * a.lattice_codes.ld + j] = code;
    } else {
      for (int k = 0; k < 8; ++k) {
        const int64_t col = 8 * j + k;
        const int64_t g = (a.col_offset + col) / a.group_size;
        const float sc = a.scale.data[row * a.scale.ld + g], z = a.zero.data[row * a.zero.ld + g];
        const uint32_t q = scalar::quantize(t[k], sc, z, a.bits);
        out[k] = scalar::dequantize(q, sc, z);
        if (lane == k) a.scalar_codes.data[row * a.scalar_codes.ld + col] = static_cast<uint8_t>(q);
      }
    }
    for (int k = 0; k < 8; ++k)
      if (lane == k) delta_s[8 * j + k] = base_s[8 * j + k] - out[k];
    // Ŵ_j is base_s − delta_s; keep it in base_s only after every lane has read B_j.
    __syncwarp();
    for (int k = 0; k < 8; ++k)
      if (lane == k) base_s[8 * j + k] = out[k];
    __syncwarp();
  }
  float* wrow = a.what.data + row * a.what.ld;
  float* drow = a.delta.data + row * a.delta.ld;
  for (int64_t i = lane; i < w; i += 32) {
    wrow[i] = base_s[i];
    drow[i] = delta_s[i];
  }
}

template <LdlqRounding kRound, LatticeCodebook kCb>
cudaError_t launch_variant(const LdlqPanelArgs& a, cudaStream_t stream) {
  const size_t smem = smem_bytes(a.base.cols);
  const cudaError_t err = cudaFuncSetAttribute(ldlq_panel_kernel<kRound, kCb>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  // Let the driver give shared memory the whole carveout, so two blocks fit on an SM.
  const cudaError_t carve =
      cudaFuncSetAttribute(ldlq_panel_kernel<kRound, kCb>, cudaFuncAttributePreferredSharedMemoryCarveout,
                           static_cast<int>(cudaSharedmemCarveoutMaxShared));
  if (carve != cudaSuccess) return carve;
  const auto grid = static_cast<unsigned>(ceil_div(a.base.rows, kWarps));
  ldlq_panel_kernel<kRound, kCb><<<grid, kWarps * 32, smem, stream>>>(a);
  return cudaGetLastError();
}

bool same_rows_cols(const auto& v, int64_t rows, int64_t cols) { return valid_view(v) && v.rows == rows && v.cols == cols; }

}  // namespace

bool ldlq_can_implement(const LdlqPanelArgs& a) noexcept {
  const int64_t m = a.base.rows, w = a.base.cols;
  if (w < 8 || w > kMaxPanel || w % 8 != 0 || !valid_view(a.base)) return false;
  if (!same_rows_cols(a.acc, m, w) || !same_rows_cols(a.what, m, w) || !same_rows_cols(a.delta, m, w)) return false;
  if (!same_rows_cols(a.mix, w, w)) return false;
  if (a.block_inv.data != nullptr && !same_rows_cols(a.block_inv, w, 8)) return false;
  if (a.rounding == LdlqRounding::kLattice) {
    if (!same_rows_cols(a.lattice_codes, m, w / 8)) return false;
    if (a.codebook != LatticeCodebook::kE8P12 && !(a.residual_scale > 0.0f)) return false;
  } else {
    if (!same_rows_cols(a.scalar_codes, m, w) || a.bits < 1 || a.bits > 8 || a.group_size <= 0 || a.col_offset < 0)
      return false;
    const int64_t groups = (a.col_offset + w - 1) / a.group_size + 1;
    if (!valid_view(a.scale) || !same_shape(a.scale, a.zero) || a.scale.rows != m || a.scale.cols < groups) return false;
  }
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
    return false;
  return smem_bytes(w) <= static_cast<size_t>(optin);
}

std::size_t ldlq_workspace_bytes(const LdlqPanelArgs&) noexcept { return 0; }

cudaError_t ldlq_launch(const LdlqPanelArgs& a, void*, cudaStream_t stream) noexcept {
  if (!ldlq_can_implement(a)) return cudaErrorInvalidValue;
  if (a.base.rows == 0) return cudaSuccess;
  const int variant = a.rounding == LdlqRounding::kScalar ? 3 : static_cast<int>(a.codebook);
  switch (variant) {
    case 0: return launch_variant<LdlqRounding::kLattice, LatticeCodebook::kE8P12>(a, stream);
    case 1: return launch_variant<LdlqRounding::kLattice, LatticeCodebook::kE8P12RVQ3B>(a, stream);
    case 2: return launch_variant<LdlqRounding::kLattice, LatticeCodebook::kE8P12RVQ4B>(a, stream);
    case 3: return launch_variant<LdlqRounding::kScalar, LatticeCodebook::kE8P12>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace caldera::kernels
