// Kernel family "hadamard" (kernels/include/kernels/hadamard.h).
//
// One thread block per row. The row (times signs_in) is loaded into shared memory, the k segments of
// length p get an in-place radix-2 FWHT (one __syncthreads per stage), then every output
// y[r·p + c] = Σ_{r'} ±x[r'·p + c] is accumulated by one thread in r' order from shared memory and
// written to global memory with the scale and signs_out. Variants: k == 1 (no mixing) and k > 1,
// selected by the one dispatch switch below.
// Constraints: n·4 + k·⌈k/32⌉·4 bytes of shared memory per block (cudaFuncAttribute opt-in above
// 48 KiB); any ld ≥ n.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "kernels/hadamard.h"

namespace caldera::kernels {
namespace {

constexpr int kThreads = 512;

enum class Mixing : bool { kNone, kGeneral };

template <Mixing kMix>
__global__ void __launch_bounds__(kThreads) hadamard_kernel(HadamardArgs a) {
  extern __shared__ float smem[];
  const int64_t n = a.p * a.k;
  float* buf = smem;
  uint32_t* g = reinterpret_cast<uint32_t*>(smem + n);
  const int64_t words = hadamard_g_words(a.k);
  float* row = a.x.data + static_cast<int64_t>(blockIdx.x) * a.x.ld;

  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) buf[i] = a.signs_in ? __fmul_rn(row[i], a.signs_in[i]) : row[i];
  if constexpr (kMix == Mixing::kGeneral)
    for (int64_t i = threadIdx.x; i < a.k * words; i += blockDim.x) g[i] = a.g_neg[i];
  __syncthreads();

  const int64_t half = a.p / 2;
  for (int64_t h = 1; h < a.p; h *= 2) {
    for (int64_t t = threadIdx.x; t < n / 2; t += blockDim.x) {
      const int64_t seg = half > 0 ? t / half : 0, u = t - seg * half;
      const int64_t j = seg * a.p + (u / h) * 2 * h + (u % h);
      const float x0 = buf[j], x1 = buf[j + h];
      buf[j] = __fadd_rn(x0, x1);
      buf[j + h] = __fsub_rn(x0, x1);
    }
    __syncthreads();
  }

  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float y;
    if constexpr (kMix == Mixing::kGeneral) {
      const int64_t r = i / a.p, c = i - r * a.p;
      const uint32_t* gr = g + r * words;
      y = (gr[0] & 1u) ? -buf[c] : buf[c];
      for (int64_t rp = 1; rp < a.k; ++rp) {
        const float v = buf[rp * a.p + c];
        y = ((gr[rp >> 5] >> (rp & 31)) & 1u) ? __fsub_rn(y, v) : __fadd_rn(y, v);
      }
    } else {
      y = buf[i];
    }
    y = __fmul_rn(y, a.scale);
    row[i] = a.signs_out ? __fmul_rn(y, a.signs_out[i]) : y;
  }
}

size_t smem_bytes(const HadamardArgs& a) {
  return static_cast<size_t>(a.p * a.k) * sizeof(float) +
         (a.k > 1 ? static_cast<size_t>(a.k * hadamard_g_words(a.k)) * sizeof(uint32_t) : 0);
}

size_t device_smem_optin() {
  int dev = 0, bytes = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return 0;
  return static_cast<size_t>(bytes);
}

template <Mixing kMix>
cudaError_t launch_variant(const HadamardArgs& a, cudaStream_t stream) {
  const size_t smem = smem_bytes(a);
  cudaError_t err = cudaFuncSetAttribute(hadamard_kernel<kMix>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  // Let the driver give shared memory the whole carveout, so two blocks fit on an SM.
  const cudaError_t carve = cudaFuncSetAttribute(hadamard_kernel<kMix>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                                 static_cast<int>(cudaSharedmemCarveoutMaxShared));
  if (carve != cudaSuccess) return carve;
  hadamard_kernel<kMix><<<static_cast<unsigned>(a.x.rows), kThreads, smem, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

bool hadamard_can_implement(const HadamardArgs& a) noexcept {
  if (a.k < 1 || a.p < 1 || (a.p & (a.p - 1)) != 0) return false;
  if (a.x.cols != a.p * a.k || !valid_view(a.x) || a.x.rows > 0x7FFFFFFF) return false;
  if (a.k > 1 && a.g_neg == nullptr) return false;
  return smem_bytes(a) <= device_smem_optin();
}

std::size_t hadamard_workspace_bytes(const HadamardArgs&) noexcept { return 0; }

cudaError_t hadamard_launch(const HadamardArgs& a, void*, cudaStream_t stream) noexcept {
  if (!hadamard_can_implement(a)) return cudaErrorInvalidValue;
  if (a.x.empty()) return cudaSuccess;
  switch (a.k > 1 ? Mixing::kGeneral : Mixing::kNone) {
    case Mixing::kNone: return launch_variant<Mixing::kNone>(a, stream);
    case Mixing::kGeneral: return launch_variant<Mixing::kGeneral>(a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace caldera::kernels
