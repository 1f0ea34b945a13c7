// Kernel family "lattice" (kernels/include/kernels/lattice.h): E8P / RVQ encode and decode.
//
// Encode: one thread per 8-vector running e8p::lattice_encode8_with with the shared-memory search
// of lattice/warp_search.cuh (the host reference's arithmetic), so codes equal the CPU facet's bit
// for bit. All threads of a warp score the same pattern at the same time (broadcast table reads,
// no divergence). Decode: one thread per 8-vector. Variants: the three codebooks, one dispatch switch per direction.
// Constraints: x.cols % 8 == 0; codes rows × cols/8; any ld.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "kernels/lattice.h"
#include "lattice/warp_search.cuh"

namespace caldera::kernels {
namespace {

constexpr int kEncodeThreads = 128;
constexpr int kDecodeThreads = 256;

template <LatticeCodebook kCb>
__global__ void __launch_bounds__(kEncodeThreads) encode_kernel(LatticeEncodeArgs a) {
  __shared__ LatticeSmemTables tab;
  load_lattice_tables(tab);
  const SmemE8pNearest nearest{tab};
  const int64_t nb = a.x.cols / 8;
  const int64_t total = a.x.rows * nb;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / nb, b = t - i * nb;
    float v[8], out[8];
    const float* src = a.x.data + i * a.x.ld + 8 * b;
    for (int c = 0; c < 8; ++c) v[c] = src[c];
    a.codes.data[i * a.codes.ld + b] = e8p::lattice_encode8_with(nearest, kCb, a.residual_scale, v, out);
    if (a.xhat.data != nullptr) {
      float* dst = a.xhat.data + i * a.xhat.ld + 8 * b;
      for (int c = 0; c < 8; ++c) dst[c] = out[c];
    }
  }
}

template <LatticeCodebook kCb>
__global__ void __launch_bounds__(kDecodeThreads) decode_kernel(LatticeDecodeArgs a) {
  const int64_t nb = a.codes.cols;
  const int64_t total = a.codes.rows * nb;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / nb, b = t - i * nb;
    float out[8];
    e8p::lattice_decode8(kCb, a.residual_scale, a.codes.data[i * a.codes.ld + b], out);
    float* dst = a.xhat.data + i * a.xhat.ld + 8 * b;
    for (int c = 0; c < 8; ++c) dst[c] = out[c];
  }
}

unsigned blocks_for(int64_t work, int threads) {
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(work, threads), 1, int64_t{1} << 20));
}

bool codebook_ok(LatticeCodebook cb, float residual_scale) {
  return cb == LatticeCodebook::kE8P12 ||
         ((cb == LatticeCodebook::kE8P12RVQ3B || cb == LatticeCodebook::kE8P12RVQ4B) && residual_scale > 0.0f);
}

}  // namespace

bool lattice_can_implement(const LatticeEncodeArgs& a) noexcept {
  return valid_view(a.x) && valid_view(a.codes) && a.x.cols % 8 == 0 && a.codes.rows == a.x.rows &&
         a.codes.cols * 8 == a.x.cols && (a.xhat.data == nullptr || (valid_view(a.xhat) && same_shape(a.xhat, a.x))) &&
         codebook_ok(a.codebook, a.residual_scale);
}
std::size_t lattice_workspace_bytes(const LatticeEncodeArgs&) noexcept { return 0; }
cudaError_t lattice_launch(const LatticeEncodeArgs& a, void*, cudaStream_t stream) noexcept {
  if (!lattice_can_implement(a)) return cudaErrorInvalidValue;
  const int64_t work = a.codes.rows * a.codes.cols;
  if (work == 0) return cudaSuccess;
  const unsigned grid = blocks_for(work, kEncodeThreads);
  switch (a.codebook) {
    case LatticeCodebook::kE8P12: encode_kernel<LatticeCodebook::kE8P12><<<grid, kEncodeThreads, 0, stream>>>(a); break;
    case LatticeCodebook::kE8P12RVQ3B:
      encode_kernel<LatticeCodebook::kE8P12RVQ3B><<<grid, kEncodeThreads, 0, stream>>>(a);
      break;
    case LatticeCodebook::kE8P12RVQ4B:
      encode_kernel<LatticeCodebook::kE8P12RVQ4B><<<grid, kEncodeThreads, 0, stream>>>(a);
      break;
  }
  return cudaGetLastError();
}

bool lattice_can_implement(const LatticeDecodeArgs& a) noexcept {
  return valid_view(a.codes) && valid_view(a.xhat) && a.codes.rows == a.xhat.rows && a.codes.cols * 8 == a.xhat.cols &&
         codebook_ok(a.codebook, a.residual_scale);
}
std::size_t lattice_workspace_bytes(const LatticeDecodeArgs&) noexcept { return 0; }
cudaError_t lattice_launch(const LatticeDecodeArgs& a, void*, cudaStream_t stream) noexcept {
  if (!lattice_can_implement(a)) return cudaErrorInvalidValue;
  const int64_t work = a.codes.rows * a.codes.cols;
  if (work == 0) return cudaSuccess;
  const unsigned grid = blocks_for(work, kDecodeThreads);
  switch (a.codebook) {
    case LatticeCodebook::kE8P12: decode_kernel<LatticeCodebook::kE8P12><<<grid, kDecodeThreads, 0, stream>>>(a); break;
    case LatticeCodebook::kE8P12RVQ3B:
      decode_kernel<LatticeCodebook::kE8P12RVQ3B><<<grid, kDecodeThreads, 0, stream>>>(a);
      break;
    case LatticeCodebook::kE8P12RVQ4B:
      decode_kernel<LatticeCodebook::kE8P12RVQ4B><<<grid, kDecodeThreads, 0, stream>>>(a);
      break;
  }
  return cudaGetLastError();
}

}  // namespace caldera::kernels
