// Counter-based random numbers (style C12): Philox4x32-10 keyed by (seed, stream ids).
//
// Value number i of a stream depends only on (seed, ids, i): never on rank, thread, backend or call
// order. The same inline functions run on host and device, so CPU and CUDA draw identical bits.
// Streams are derived as Rng(seed).stream({layer, matrix, purpose}).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "core/hd.h"

namespace caldera {

/// Purposes, used as the last stream id so different uses of one (layer, matrix) never collide.
enum class RngPurpose : uint64_t {
  kSignsIn = 1,    ///< RHT sign vector SU (input dimension)
  kSignsOut = 2,   ///< RHT sign vector SV (output dimension)
  kInit = 3,       ///< initial values of iterative methods
  kSketch = 4,     ///< randomized SVD test matrices
  kTestData = 5,   ///< synthetic data in tests and benchmarks
  kCalibSample = 6 ///< calibration sampling
};

struct RngKey {
  uint32_t k0 = 0;
  uint32_t k1 = 0;
};

namespace detail {
CALDERA_HD inline void mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace detail

/// Philox4x32 with 10 rounds (Salmon et al., SC'11). ctr: 128-bit counter, out: 4 words.
CALDERA_HD inline void philox4x32_10(const uint32_t ctr_in[4], RngKey key, uint32_t out[4]) {
  uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo32(0xD2511F53u, c0, &hi0, &lo0);
    detail::mulhilo32(0xCD9E8D57u, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/// Four 32-bit words for element `index` of the stream.
CALDERA_HD inline void rng_words(RngKey key, uint64_t index, uint32_t out[4]) {
  const uint32_t ctr[4] = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0x243F6A88u, 0x85A308D3u};
  philox4x32_10(ctr, key, out);
}

/// Uniform in [0, 1) with 24 random bits (exactly representable in fp32).
CALDERA_HD inline float rng_uniform(RngKey key, uint64_t index) {
  uint32_t w[4];
  rng_words(key, index, w);
  return static_cast<float>(w[0] >> 8) * (1.0f / 16777216.0f);
}

/// ±1 with probability 1/2 each.
CALDERA_HD inline float rng_sign(RngKey key, uint64_t index) {
  uint32_t w[4];
  rng_words(key, index, w);
  return (w[0] & 1u) ? -1.0f : 1.0f;
}

/// Standard normal by Box-Muller on two 32-bit words; computed in double so host and device agree
/// to the last bit after rounding to float (both use correctly-rounded-enough libm for these ranges).
CALDERA_HD inline double rng_normal(RngKey key, uint64_t index) {
  uint32_t w[4];
  rng_words(key, index, w);
  const uint64_t a = (static_cast<uint64_t>(w[0]) << 21) ^ w[1];
  const double u1 = (static_cast<double>(a & ((1ull << 53) - 1)) + 0.5) * (1.0 / 9007199254740992.0);
  const double u2 = static_cast<double>(w[2]) * (1.0 / 4294967296.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

/// Host handle on one stream.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(detail::splitmix64(seed ^ 0x6a09e667f3bcc909ull)) {}

  /// Child stream; Rng(s).stream({a, b}) == Rng(s).stream({a}).stream({b}).
  [[nodiscard]] Rng stream(std::initializer_list<uint64_t> ids) const {
    Rng r = *this;
    for (uint64_t id : ids) r.state_ = detail::splitmix64(r.state_ ^ detail::splitmix64(id + 0x3c6ef372fe94f82bull));
    return r;
  }
  [[nodiscard]] Rng stream(uint64_t layer, uint64_t matrix, RngPurpose purpose) const {
    return stream({layer, matrix, static_cast<uint64_t>(purpose)});
  }

  [[nodiscard]] RngKey key() const {
    return RngKey{static_cast<uint32_t>(state_), static_cast<uint32_t>(state_ >> 32)};
  }
  [[nodiscard]] uint64_t state() const { return state_; }

  float uniform(uint64_t i) const { return rng_uniform(key(), i); }
  float sign(uint64_t i) const { return rng_sign(key(), i); }
  double normal(uint64_t i) const { return rng_normal(key(), i); }

  std::vector<float> signs(int64_t n) const {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = sign(static_cast<uint64_t>(i));
    return v;
  }
  std::vector<float> normals(int64_t n) const {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(normal(static_cast<uint64_t>(i)));
    return v;
  }

 private:
  uint64_t state_;
};

}  // namespace caldera
