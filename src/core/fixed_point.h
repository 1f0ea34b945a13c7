// Exact, order-independent sums of fp64 values (DESIGN §3: results must not depend on the number
// of ranks). A value is held in fixed point with kFixedFracBits fractional bits in a signed 128-bit
// integer. Converting a double rounds to nearest (ties to even) — a deterministic function of the
// double — and adding fixed-point values is exact and associative, so per-rank partial sums merged
// in any order and any grouping give identical bits.
//
// Range and resolution with 60 fractional bits: |value| < 2^66 (7.4e19), step 2^-60 (8.7e-19).
// Phase 1 converts each sequence's fp64 Gram matrix once (the fp64 GEMM of one sequence is itself
// deterministic), so the sum over all calibration tokens is exact up to one rounding per sequence.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace caldera {

__extension__ typedef __int128 Fixed128;          // GCC/Clang/nvcc extension
__extension__ typedef unsigned __int128 UFixed128;

inline constexpr int kFixedFracBits = 60;
/// Largest magnitude to_fixed() accepts (2^66).
inline constexpr double kFixedMaxMagnitude = 73786976294838206464.0;

namespace detail {
CALDERA_HD inline uint64_t double_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
#endif
}
}  // namespace detail

/// round(v · 2^kFixedFracBits) to nearest, ties to even. Precondition: v finite and
/// |v| < kFixedMaxMagnitude (callers check; out-of-range values return 0).
CALDERA_HD inline Fixed128 to_fixed(double v) {
  const uint64_t bits = detail::double_bits(v);
  const bool negative = (bits >> 63) != 0;
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  if (biased == 0x7ff) return 0;
  uint64_t mantissa = bits & ((uint64_t{1} << 52) - 1);
  int exponent;  // v = mantissa · 2^exponent
  if (biased == 0) {
    exponent = -1074;  // subnormal
  } else {
    mantissa |= uint64_t{1} << 52;
    exponent = biased - 1075;
  }
  const int shift = exponent + kFixedFracBits;  // fixed = mantissa · 2^shift
  UFixed128 magnitude;
  if (shift >= 0) {
    if (shift > 73) return 0;  // out of range (|v| >= 2^66 has shift >= 74 only with exponent >= 14)
    magnitude = static_cast<UFixed128>(mantissa) << shift;
  } else if (shift <= -64) {
    magnitude = 0;  // below half an lsb even for the largest mantissa
    if (shift == -64 && mantissa > (uint64_t{1} << 63)) magnitude = 1;
  } else {
    const int s = -shift;
    const uint64_t q = mantissa >> s;
    const uint64_t rem = mantissa & ((uint64_t{1} << s) - 1);
    const uint64_t half = uint64_t{1} << (s - 1);
    magnitude = q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0);
  }
  const Fixed128 f = static_cast<Fixed128>(magnitude);
  return negative ? -f : f;
}

/// The double nearest to f · 2^-kFixedFracBits (deterministic; within 1 ulp).
CALDERA_HD inline double from_fixed(Fixed128 f) {
  const int64_t hi = static_cast<int64_t>(f >> 64);
  const uint64_t lo = static_cast<uint64_t>(f);
  // hi·2^64 and lo are each exact or rounded once; the sum rounds once more: deterministic.
  const double value = static_cast<double>(hi) * 18446744073709551616.0 + static_cast<double>(lo);
  return value * (1.0 / 1152921504606846976.0);  // 2^-60
}

/// Splits f into three integers of at most 43 bits held exactly in doubles (c0 + c1·2^43 + c2·2^86),
/// so that fixed-point values can be summed over up to 1024 ranks with ordinary fp64 reductions,
/// exactly (every partial sum stays below 2^53).
CALDERA_HD inline void fixed_to_chunks(Fixed128 f, double chunks[3]) {
  constexpr int64_t mask = (int64_t{1} << 43) - 1;
  const int64_t c0 = static_cast<int64_t>(f & mask);
  const int64_t c1 = static_cast<int64_t>((f >> 43) & mask);
  const int64_t c2 = static_cast<int64_t>(f >> 86);  // arithmetic shift keeps the sign
  chunks[0] = static_cast<double>(c0);
  chunks[1] = static_cast<double>(c1);
  chunks[2] = static_cast<double>(c2);
}

/// Inverse of fixed_to_chunks for (summed) chunks.
CALDERA_HD inline Fixed128 chunks_to_fixed(const double chunks[3]) {
  return static_cast<Fixed128>(static_cast<int64_t>(chunks[0])) +
         (static_cast<Fixed128>(static_cast<int64_t>(chunks[1])) << 43) +
         (static_cast<Fixed128>(static_cast<int64_t>(chunks[2])) << 86);
}

}  // namespace caldera
