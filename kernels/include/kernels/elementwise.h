// Kernel family "elementwise": maps, diagonal access, conversion, Philox normal fill, tiled
// transposes, triangle mirroring and deterministic double-precision reductions on strided row-major
// matrices in device memory (style C7).
//
// Every kernel of the family is described by one Args struct and reached through three overloads:
//   elementwise_can_implement(args)   -> false when the arguments are inconsistent (shapes, ld,
//                                        null pointers); launch would return cudaErrorInvalidValue
//   elementwise_workspace_bytes(args) -> device scratch the launch needs (0 for most kernels)
//   elementwise_launch(args, workspace, stream)
//                                     -> enqueues on `stream`, never allocates, never synchronizes,
//                                        returns the launch status (cudaGetLastError()).
// All functions are noexcept. Views follow core/matrix.h: element (i, j) at data[i * ld + j] with
// ld >= cols (any ld when rows <= 1); all pointers are device pointers; empty views launch nothing.
// Instantiated for float and double (ConvertArgs: float -> double and double -> float;
// FillNormalArgs: float). Callers (src/linalg/cuda) check the returned status exactly once.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/fixed_point.h"
#include "core/matrix.h"
#include "core/rng.h"

namespace caldera::kernels {

// ---- maps ---------------------------------------------------------------------------------------
enum class MapOp : uint8_t {
  kFill,     ///< y(i,j) = alpha
  kScale,    ///< y(i,j) *= alpha
  kAxpby,    ///< y(i,j) = alpha x(i,j) + beta y(i,j); with beta == 0, y is not read
  kMulRows,  ///< y(i,j) *= v[i]   (v: y.rows contiguous entries)
  kMulCols,  ///< y(i,j) *= v[j]   (v: y.cols contiguous entries)
};

/// One elementwise map over y; the dispatch switch of the family runs over `op`.
template <class T>
struct MapArgs {
  MapOp op = MapOp::kFill;
  MatrixView<T> y;        ///< in/out
  MatrixView<const T> x;  ///< kAxpby only: same shape as y (may be y itself)
  const T* v = nullptr;   ///< kMulRows / kMulCols only
  T alpha = T(0);
  T beta = T(0);
};

/// a(i,i) += value for i < min(rows, cols).
template <class T>
struct AddDiagonalArgs {
  MatrixView<T> a;
  T value = T(0);
};

/// d[i] = a(i,i) for i < min(rows, cols); d contiguous.
template <class T>
struct ExtractDiagonalArgs {
  MatrixView<const T> a;
  T* d = nullptr;
};

/// dst(i,j) = src(i,j) converted (double -> float rounds to nearest even); same shapes, no aliasing.
template <class S, class D>
struct ConvertArgs {
  MatrixView<const S> src;
  MatrixView<D> dst;
};
using WidenArgs = ConvertArgs<float, double>;
using NarrowArgs = ConvertArgs<double, float>;

/// a(i,j) = (float) rng_normal(key, i * a.cols + j) (core/rng.h; the CPU backend's values).
struct FillNormalArgs {
  MatrixView<float> a;
  RngKey key;
};

// ---- transposes and triangles (kernels/elementwise/transpose.cu) ----------------------------------
/// at = aᵀ through 32×32 shared-memory tiles (coalesced reads and writes); at must not alias a.
template <class T>
struct TransposeArgs {
  MatrixView<const T> a;  ///< rows × cols
  MatrixView<T> at;       ///< cols × rows
};

enum class TriangleOp : uint8_t {
  kMirrorLowerToUpper,  ///< a(i,j) = a(j,i) for j > i: makes a symmetric from its lower triangle
  kZeroStrictUpper,     ///< a(i,j) = 0 for j > i
};

/// Triangle operation on a square matrix (row-major triangles).
template <class T>
struct TriangleArgs {
  TriangleOp op = TriangleOp::kMirrorLowerToUpper;
  MatrixView<T> a;
};

// ---- reductions (kernels/elementwise/reduce.cu) --------------------------------------------------
enum class ReduceOp : uint8_t {
  kSumSquares,      ///< Σ a(i,j)²
  kDot,             ///< Σ a(i,j) b(i,j)   (b same shape as a)
  kCountNonFinite,  ///< number of entries that are NaN or ±Inf
};

/// Reduction accumulated in double into *result (device). Deterministic: the summation order
/// depends only on the shape, never on the device or on timing (per-block partial sums in the
/// workspace, then one block sums the partials in a fixed order). Needs workspace.
template <class T>
struct ReduceArgs {
  ReduceOp op = ReduceOp::kSumSquares;
  MatrixView<const T> a;
  MatrixView<const T> b;     ///< kDot only
  double* result = nullptr;  ///< one double; written even for empty a (0)
};

/// acc(i,j) += to_fixed(g(i,j)) (core/fixed_point.h); entries that are not finite or out of range
/// are skipped and counted into *bad_count (device, one unsigned long long, not reset by the kernel).
struct FixedAccumulateArgs {
  MatrixView<const double> g;
  MatrixView<Fixed128> acc;
  unsigned long long* bad_count = nullptr;
};

/// out(i,j) = chunk `chunk` of fixed_to_chunks(acc(i,j)) (core/fixed_point.h).
struct FixedChunkArgs {
  MatrixView<const Fixed128> acc;
  int chunk = 0;
  MatrixView<double> out;
};

// ---- the three entry points, for every Args above -------------------------------------------------
#define CALDERA_ELEMENTWISE_DECLARE(ArgsType)                                                         \
  [[nodiscard]] bool elementwise_can_implement(const ArgsType& args) noexcept;                        \
  [[nodiscard]] std::size_t elementwise_workspace_bytes(const ArgsType& args) noexcept;               \
  [[nodiscard]] cudaError_t elementwise_launch(const ArgsType& args, void* workspace, cudaStream_t stream) noexcept;

CALDERA_ELEMENTWISE_DECLARE(MapArgs<float>)
CALDERA_ELEMENTWISE_DECLARE(MapArgs<double>)
CALDERA_ELEMENTWISE_DECLARE(AddDiagonalArgs<float>)
CALDERA_ELEMENTWISE_DECLARE(AddDiagonalArgs<double>)
CALDERA_ELEMENTWISE_DECLARE(ExtractDiagonalArgs<float>)
CALDERA_ELEMENTWISE_DECLARE(ExtractDiagonalArgs<double>)
CALDERA_ELEMENTWISE_DECLARE(WidenArgs)
CALDERA_ELEMENTWISE_DECLARE(NarrowArgs)
CALDERA_ELEMENTWISE_DECLARE(FillNormalArgs)
CALDERA_ELEMENTWISE_DECLARE(TransposeArgs<float>)
CALDERA_ELEMENTWISE_DECLARE(TransposeArgs<double>)
CALDERA_ELEMENTWISE_DECLARE(TriangleArgs<float>)
CALDERA_ELEMENTWISE_DECLARE(TriangleArgs<double>)
CALDERA_ELEMENTWISE_DECLARE(ReduceArgs<float>)
CALDERA_ELEMENTWISE_DECLARE(ReduceArgs<double>)
CALDERA_ELEMENTWISE_DECLARE(FixedAccumulateArgs)
CALDERA_ELEMENTWISE_DECLARE(FixedChunkArgs)

#undef CALDERA_ELEMENTWISE_DECLARE

}  // namespace caldera::kernels
