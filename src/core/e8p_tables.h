// Quantization tables and host/device codecs: the E8P12 lattice codebook (spec
// caldera-quipsharp.md §5, App. B) and the uniform scalar grid (spqr.md §4.1).
//
// Everything here is usable from host code and from CUDA kernels (CALDERA_HD), so the CPU facet
// (linalg/cpu) and the CUDA kernels (kernels/lattice, kernels/ldlq) run the SAME arithmetic:
// identical inputs give identical codes on both backends.
//
// Tables (values verified against the spec's construction rules by tests/unit/quant):
//  - kE8pPackedAbs[256]: PACKED_ABS (§5.2, App. B). Nibble σ(i) of word a holds 2·ã_i + 8 where ã
//    is source pattern a with coordinate 7 negated when Σa is odd; σ = [0,4,1,5,2,6,3,7].
//  - kE81bPacked[256]: the E81B grid (§5.6) in natural coordinate order, nibble i = 2·g_i + 4.
//
// Exact nearest search (§5.4). The 512 candidates (shift t ∈ {+¼, −¼} × 256 patterns) are scored in
// double precision with one fixed operation order and no fused multiply-add (device code uses the
// __d*_rn intrinsics), so every candidate's score has the same bits on every backend. With y = x − t,
// v = |y|, c = 2a ∈ {1,3,5}^8 and s = Σ c_i v_i (minus 2·min_i c_i v_i on a parity mismatch):
//      4·‖y − u‖² = 4‖y‖² + key,   key = Σ c_i² − 4 s.
// Within one shift the candidate with the smallest key wins; ties go to the LOWER pattern index.
// Across shifts 4‖y₊‖² − 4‖y₋‖² = −4Σx exactly, so +¼ wins iff key₊ − key₋ ≤ 4Σx (ties go to +¼).
// A parity fix flips the coordinate with the smallest c_i v_i, the LOWEST such index on ties.
// Any implementation that evaluates e8p_candidate_key() (or e8p_key_from_coeffs() on the same
// coefficients) for all candidates and reduces with these rules, in any grouping, returns the same
// code as e8p_nearest().
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace caldera {

/// The lattice codebooks of QuIP# (§5.6-§5.7): 2, 3 and 4 bits per weight.
enum class LatticeCodebook : uint8_t {
  kE8P12,       ///< 16-bit E8P code per 8-vector (2 bits/weight)
  kE8P12RVQ3B,  ///< E8P code + 8-bit E81B residual code (3 bits/weight)
  kE8P12RVQ4B,  ///< E8P code + E8P residual code (4 bits/weight)
};

/// Bits per weight of a codebook.
constexpr int lattice_bits(LatticeCodebook cb) noexcept {
  return cb == LatticeCodebook::kE8P12 ? 2 : (cb == LatticeCodebook::kE8P12RVQ3B ? 3 : 4);
}
/// First-stage input RMS that minimises Gaussian MSE (§5.7): 1.03, 0.98, 1.03.
constexpr float lattice_opt_scale(LatticeCodebook cb) noexcept {
  return cb == LatticeCodebook::kE8P12RVQ3B ? 0.98f : 1.03f;
}
/// Residual scale σ_r of the second stage (§5.7): 2.04 (3B), 3.45 (4B); 0 for E8P12 (no residual).
/// One value per codebook, stored with the layer; never CALDERA's 0.9 override (pitfall P6).
constexpr float lattice_default_residual_scale(LatticeCodebook cb) noexcept {
  return cb == LatticeCodebook::kE8P12 ? 0.0f : (cb == LatticeCodebook::kE8P12RVQ3B ? 2.04f : 3.45f);
}

namespace e8p {

#define CALDERA_E8P_PACKED_ABS_VALUES \
    0x99999999u, 0x59999999u, 0xD9999999u, 0x7999B999u, 0xB999B999u, 0x3999B999u, 0x9999D999u, 0x5999D999u, \
    0x7B999999u, 0xBB999999u, 0x3B999999u, 0x9B99B999u, 0x5B99B999u, 0x7B99D999u, 0x9D999999u, 0x5D999999u, \
    0x7D99B999u, 0x79999B99u, 0xB9999B99u, 0x39999B99u, 0x9999BB99u, 0x5999BB99u, 0x7999DB99u, 0x9B999B99u, \
    0x5B999B99u, 0x7B99BB99u, 0xBB99BB99u, 0x7D999B99u, 0x99999D99u, 0x59999D99u, 0x7999BD99u, 0x7B999D99u, \
    0x79B99999u, 0xB9B99999u, 0x39B99999u, 0x99B9B999u, 0x59B9B999u, 0x79B9D999u, 0x9BB99999u, 0x5BB99999u, \
    0x7BB9B999u, 0xBBB9B999u, 0x7DB99999u, 0x99B99B99u, 0x59B99B99u, 0x79B9BB99u, 0xB9B9BB99u, 0x7BB99B99u, \
    0xBBB99B99u, 0x9BB9BB99u, 0x79B99D99u, 0x99D99999u, 0x59D99999u, 0x79D9B999u, 0x7BD99999u, 0x79D99B99u, \
    0x799999B9u, 0xB99999B9u, 0x399999B9u, 0x9999B9B9u, 0x5999B9B9u, 0x7999D9B9u, 0x9B9999B9u, 0x5B9999B9u, \
    0x7B99B9B9u, 0xBB99B9B9u, 0x7D9999B9u, 0x99999BB9u, 0x59999BB9u, 0x7999BBB9u, 0xB999BBB9u, 0x7B999BB9u, \
    0xBB999BB9u, 0x9B99BBB9u, 0x79999DB9u, 0x99B999B9u, 0x59B999B9u, 0x79B9B9B9u, 0xB9B9B9B9u, 0x7BB999B9u, \
    0xBBB999B9u, 0x9BB9B9B9u, 0x79B99BB9u, 0xB9B99BB9u, 0x99B9BBB9u, 0x9BB99BB9u, 0x79D999B9u, 0x999999D9u, \
    0x599999D9u, 0x7999B9D9u, 0x7B9999D9u, 0x79999BD9u, 0x79B999D9u, 0x799B9999u, 0xB99B9999u, 0x399B9999u, \
    0x999BB999u, 0x599BB999u, 0x799BD999u, 0x9B9B9999u, 0x5B9B9999u, 0x7B9BB999u, 0xBB9BB999u, 0x7D9B9999u, \
    0x999B9B99u, 0x599B9B99u, 0x799BBB99u, 0xB99BBB99u, 0x7B9B9B99u, 0xBB9B9B99u, 0x9B9BBB99u, 0x799B9D99u, \
    0x99BB9999u, 0x59BB9999u, 0x79BBB999u, 0xB9BBB999u, 0x7BBB9999u, 0xBBBB9999u, 0x9BBBB999u, 0x79BB9B99u, \
    0xB9BB9B99u, 0x99BBBB99u, 0x9BBB9B99u, 0x79DB9999u, 0x999B99B9u, 0x599B99B9u, 0x799BB9B9u, 0xB99BB9B9u, \
    0x7B9B99B9u, 0xBB9B99B9u, 0x9B9BB9B9u, 0x799B9BB9u, 0xB99B9BB9u, 0x999BBBB9u, 0x9B9B9BB9u, 0x79BB99B9u, \
    0xB9BB99B9u, 0x99BBB9B9u, 0x9BBB99B9u, 0x99BB9BB9u, 0x799B99D9u, 0x999D9999u, 0x599D9999u, 0x799DB999u, \
    0x7B9D9999u, 0x799D9B99u, 0x79BD9999u, 0x799D99B9u, 0x7999999Bu, 0xB999999Bu, 0x3999999Bu, 0x9999B99Bu, \
    0x5999B99Bu, 0x7999D99Bu, 0x9B99999Bu, 0x5B99999Bu, 0x7B99B99Bu, 0xBB99B99Bu, 0x7D99999Bu, 0x99999B9Bu, \
    0x59999B9Bu, 0x7999BB9Bu, 0xB999BB9Bu, 0x7B999B9Bu, 0xBB999B9Bu, 0x9B99BB9Bu, 0x79999D9Bu, 0x99B9999Bu, \
    0x59B9999Bu, 0x79B9B99Bu, 0xB9B9B99Bu, 0x7BB9999Bu, 0xBBB9999Bu, 0x9BB9B99Bu, 0x79B99B9Bu, 0xB9B99B9Bu, \
    0x99B9BB9Bu, 0x9BB99B9Bu, 0x79D9999Bu, 0x999999BBu, 0x599999BBu, 0x7999B9BBu, 0xB999B9BBu, 0x7B9999BBu, \
    0xBB9999BBu, 0x9B99B9BBu, 0x79999BBBu, 0xB9999BBBu, 0x9999BBBBu, 0x9B999BBBu, 0x79B999BBu, 0xB9B999BBu, \
    0x99B9B9BBu, 0x9BB999BBu, 0x99B99BBBu, 0x799999DBu, 0x999B999Bu, 0x599B999Bu, 0x799BB99Bu, 0xB99BB99Bu, \
    0x7B9B999Bu, 0xBB9B999Bu, 0x9B9BB99Bu, 0x799B9B9Bu, 0xB99B9B9Bu, 0x999BBB9Bu, 0x9B9B9B9Bu, 0x79BB999Bu, \
    0xB9BB999Bu, 0x99BBB99Bu, 0x9BBB999Bu, 0x99BB9B9Bu, 0x799B99BBu, 0xB99B99BBu, 0x999BB9BBu, 0x9B9B99BBu, \
    0x999B9BBBu, 0x99BB99BBu, 0x799D999Bu, 0x9999999Du, 0x5999999Du, 0x7999B99Du, 0x7B99999Du, 0x79999B9Du, \
    0x79B9999Du, 0x799999BDu, 0x799B999Du, 0x5B99BB9Bu, 0x5B9BBB99u, 0x5B99BBB9u, 0x5BB9BB99u, 0x7B9B9BBBu, \
    0x799BBBBBu, 0x7B9BB9BBu, 0x599B9BBBu, 0x5B9B99BBu, 0x599BB9BBu, 0x7BBB9B9Bu, 0x79BBBB9Bu, 0x7BBBB99Bu, \
    0x59BB9B9Bu, 0x5BBB999Bu, 0x59BBB99Bu, 0x7BB99BBBu, 0x79B9BBBBu, 0x7BB9B9BBu, 0x59B99BBBu, 0x5BB999BBu, \
    0x59BBB9B9u, 0x7BBB9BB9u, 0x79BBBBB9u, 0x7BBBB9B9u, 0x59BB9BB9u, 0x5BBB99B9u, 0x5BB9B9B9u, 0x7B9BBB9Bu,

#define CALDERA_E81B_PACKED_VALUES \
    0x44444422u, 0x44444242u, 0x44442442u, 0x44424442u, 0x44244442u, 0x42444442u, 0x24444442u, 0x64444442u, \
    0x46444442u, 0x44644442u, 0x44464442u, 0x44446442u, 0x44444642u, 0x44444462u, 0x44444224u, 0x44442424u, \
    0x44424424u, 0x44244424u, 0x42444424u, 0x24444424u, 0x64444424u, 0x46444424u, 0x44644424u, 0x44464424u, \
    0x44446424u, 0x44444624u, 0x44442244u, 0x44424244u, 0x44244244u, 0x42444244u, 0x24444244u, 0x64444244u, \
    0x46444244u, 0x44644244u, 0x44464244u, 0x44446244u, 0x44422444u, 0x44242444u, 0x42442444u, 0x24442444u, \
    0x64442444u, 0x46442444u, 0x44642444u, 0x44462444u, 0x44224444u, 0x42424444u, 0x24424444u, 0x64424444u, \
    0x46424444u, 0x44624444u, 0x42244444u, 0x24244444u, 0x64244444u, 0x46244444u, 0x22444444u, 0x62444444u, \
    0x44444444u, 0x26444444u, 0x66444444u, 0x42644444u, 0x24644444u, 0x64644444u, 0x46644444u, 0x44264444u, \
    0x42464444u, 0x24464444u, 0x64464444u, 0x46464444u, 0x44664444u, 0x44426444u, 0x44246444u, 0x42446444u, \
    0x24446444u, 0x64446444u, 0x46446444u, 0x44646444u, 0x44466444u, 0x44442644u, 0x44424644u, 0x44244644u, \
    0x42444644u, 0x24444644u, 0x64444644u, 0x46444644u, 0x44644644u, 0x44464644u, 0x44446644u, 0x44444264u, \
    0x44442464u, 0x44424464u, 0x44244464u, 0x42444464u, 0x24444464u, 0x64444464u, 0x46444464u, 0x44644464u, \
    0x44464464u, 0x44446464u, 0x44444664u, 0x44444426u, 0x44444246u, 0x44442446u, 0x44424446u, 0x44244446u, \
    0x42444446u, 0x24444446u, 0x64444446u, 0x46444446u, 0x44644446u, 0x44464446u, 0x44446446u, 0x44444646u, \
    0x44444466u, 0x33333333u, 0x55333333u, 0x53533333u, 0x35533333u, 0x53353333u, 0x35353333u, 0x33553333u, \
    0x55553333u, 0x53335333u, 0x35335333u, 0x33535333u, 0x55535333u, 0x33355333u, 0x55355333u, 0x53555333u, \
    0x35555333u, 0x53333533u, 0x35333533u, 0x33533533u, 0x55533533u, 0x33353533u, 0x55353533u, 0x53553533u, \
    0x35553533u, 0x33335533u, 0x55335533u, 0x53535533u, 0x35535533u, 0x53355533u, 0x35355533u, 0x33555533u, \
    0x55555533u, 0x53333353u, 0x35333353u, 0x33533353u, 0x55533353u, 0x33353353u, 0x55353353u, 0x53553353u, \
    0x35553353u, 0x33335353u, 0x55335353u, 0x53535353u, 0x35535353u, 0x53355353u, 0x35355353u, 0x33555353u, \
    0x55555353u, 0x33333553u, 0x55333553u, 0x53533553u, 0x35533553u, 0x53353553u, 0x35353553u, 0x33553553u, \
    0x55553553u, 0x53335553u, 0x35335553u, 0x33535553u, 0x55535553u, 0x33355553u, 0x55355553u, 0x53555553u, \
    0x35555553u, 0x53333335u, 0x35333335u, 0x33533335u, 0x55533335u, 0x33353335u, 0x55353335u, 0x53553335u, \
    0x35553335u, 0x33335335u, 0x55335335u, 0x53535335u, 0x35535335u, 0x53355335u, 0x35355335u, 0x33555335u, \
    0x55555335u, 0x33333535u, 0x55333535u, 0x53533535u, 0x35533535u, 0x53353535u, 0x35353535u, 0x33553535u, \
    0x55553535u, 0x53335535u, 0x35335535u, 0x33535535u, 0x55535535u, 0x33355535u, 0x55355535u, 0x53555535u, \
    0x35555535u, 0x33333355u, 0x55333355u, 0x53533355u, 0x35533355u, 0x53353355u, 0x35353355u, 0x33553355u, \
    0x55553355u, 0x53335355u, 0x35335355u, 0x33535355u, 0x55535355u, 0x33355355u, 0x55355355u, 0x53555355u, \
    0x35555355u, 0x53333555u, 0x35333555u, 0x33533555u, 0x55533555u, 0x33353555u, 0x55353555u, 0x53553555u, \
    0x35553555u, 0x33335555u, 0x55335555u, 0x53535555u, 0x35535555u, 0x53355555u, 0x35355555u, 0x33555555u, \
    0x55555555u, 0x44444448u, 0x44444484u, 0x44444844u, 0x44448444u, 0x44484444u, 0x44844444u, 0x48444444u, \
    0x84444444u, 0x44444440u, 0x44444404u, 0x44444044u, 0x44440444u, 0x44404444u, 0x44044444u, 0x40444444u,

inline constexpr uint32_t kE8pPackedAbs[256] = {CALDERA_E8P_PACKED_ABS_VALUES};
inline constexpr uint32_t kE81bPacked[256] = {CALDERA_E81B_PACKED_VALUES};
#if defined(__CUDACC__)
// Device copies (internal linkage, as nvcc requires for non-rdc builds).
static constexpr __device__ uint32_t kE8pPackedAbsDevice[256] = {CALDERA_E8P_PACKED_ABS_VALUES};
static constexpr __device__ uint32_t kE81bPackedDevice[256] = {CALDERA_E81B_PACKED_VALUES};
#endif
#undef CALDERA_E8P_PACKED_ABS_VALUES
#undef CALDERA_E81B_PACKED_VALUES

/// σ(i): nibble position of coordinate i in a PACKED_ABS word and bit of coordinate i in the sign
/// byte; σ = [0, 4, 1, 5, 2, 6, 3, 7].
CALDERA_HD constexpr int sigma(int i) { return (i >> 1) + 4 * (i & 1); }

/// PACKED_ABS[a] (a < 256) from host or device code.
CALDERA_HD inline uint32_t packed_abs(int a) {
#if defined(__CUDA_ARCH__)
  return kE8pPackedAbsDevice[a];
#else
  return kE8pPackedAbs[a];
#endif
}
/// E81B entry g (< 256) packed as nibbles 2·g_i + 4 (coordinate i in nibble i).
CALDERA_HD inline uint32_t e81b_packed(int g) {
#if defined(__CUDA_ARCH__)
  return kE81bPackedDevice[g];
#else
  return kE81bPacked[g];
#endif
}

// ---- arithmetic that is never contracted into FMA (same bits on host and device) -------------
namespace rn {
CALDERA_HD inline double add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
CALDERA_HD inline double sub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
CALDERA_HD inline double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
CALDERA_HD inline float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
CALDERA_HD inline float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
CALDERA_HD inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
CALDERA_HD inline float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
}  // namespace rn

// ---- E8P decode (§5.3) -------------------------------------------------------------------------

/// Decodes a 16-bit E8P code into v[0..7] (exact quarter-integers).
CALDERA_HD inline void e8p_decode(uint32_t code, float v[8]) {
  const uint32_t a_idx = (code >> 8) & 0xFFu;
  uint32_t s = code & 0xFFu;
  uint32_t p = s;
  p ^= p >> 4;
  p ^= p >> 2;
  p ^= p >> 1;
  p &= 1u;
  s ^= p;
  const uint32_t w = packed_abs(static_cast<int>(a_idx));
  const float shift = p ? -0.25f : 0.25f;
  for (int i = 0; i < 8; ++i) {
    const int nib = static_cast<int>((w >> (4 * sigma(i))) & 15u);
    float x = static_cast<float>(nib - 8) * 0.5f;
    if ((s >> sigma(i)) & 1u) x = -x;
    v[i] = x + shift;
  }
}

// ---- E8P exact nearest search (§5.4) -----------------------------------------------------------

/// Per-shift inputs of the search: v_i = |x_i − t| (double) and the mask of coordinates with
/// x_i − t < 0. shift 0 is t = +¼, shift 1 is t = −¼.
struct E8pShift {
  double v[8];
  uint32_t neg_mask;
};

CALDERA_HD inline E8pShift e8p_prepare_shift(const float x[8], int shift) {
  E8pShift s{};
  const double t = shift == 0 ? 0.25 : -0.25;
  s.neg_mask = 0;
  for (int i = 0; i < 8; ++i) {
    const double y = rn::sub(static_cast<double>(x[i]), t);
    s.v[i] = y < 0.0 ? -y : y;
    if (y < 0.0) s.neg_mask |= 1u << i;
  }
  return s;
}

/// 4·Σx in double, summed in coordinate order (the cross-shift threshold).
CALDERA_HD inline double e8p_sum_x4(const float x[8]) {
  double sx = 0.0;
  for (int i = 0; i < 8; ++i) sx = rn::add(sx, static_cast<double>(x[i]));
  return rn::mul(sx, 4.0);
}

/// Whether pattern word `w` has an odd coordinate sum (its coordinate 7 is stored negated).
CALDERA_HD inline uint32_t e8p_need_odd(uint32_t w) { return (w >> 28) < 8u ? 1u : 0u; }

/// c_i = 2·a_i ∈ {1, 3, 5} of pattern word `w`.
CALDERA_HD inline int e8p_coeff(uint32_t w, int i) {
  const int nib = static_cast<int>((w >> (4 * sigma(i))) & 15u);
  return nib >= 8 ? nib - 8 : 8 - nib;
}

/// key = Σ c_i² − 4 s (see the file comment) from the pattern's coefficients c[i·stride] (as
/// doubles), nc2 = Σ c_i² and its parity flag; smaller is nearer. Kernels call this with tables
/// in shared memory; the arithmetic is identical to e8p_candidate_key.
CALDERA_HD inline double e8p_key_from_coeffs(const E8pShift& sh, const double* c, int stride, double nc2,
                                             uint32_t need_odd) {
  double s = 0.0;
  double mn = 0.0;
  for (int i = 0; i < 8; ++i) {
    const double p = rn::mul(c[i * stride], sh.v[i]);
    s = rn::add(s, p);
    mn = (i == 0 || p < mn) ? p : mn;
  }
  uint32_t par = sh.neg_mask;
  par ^= par >> 4;
  par ^= par >> 2;
  par ^= par >> 1;
  if ((par & 1u) != need_odd) s = rn::sub(s, rn::mul(2.0, mn));
  return rn::sub(nc2, rn::mul(4.0, s));
}

/// key of pattern word `w` (see the file comment); smaller is nearer.
CALDERA_HD inline double e8p_candidate_key(const E8pShift& sh, uint32_t w) {
  double c[8];
  int nc2 = 0;
  for (int i = 0; i < 8; ++i) {
    const int ci = e8p_coeff(w, i);
    nc2 += ci * ci;
    c[i] = static_cast<double>(ci);
  }
  return e8p_key_from_coeffs(sh, c, 1, static_cast<double>(nc2), e8p_need_odd(w));
}

/// The 16-bit code of candidate (shift, pattern a with word w): signs from the shift's negatives,
/// parity fixed by flipping the lowest-index coordinate with the smallest c_i v_i (§5.4).
CALDERA_HD inline uint32_t e8p_make_code(const E8pShift& sh, int a, uint32_t w, int shift) {
  double mn = 0.0;
  int jmin = 0;
  for (int i = 0; i < 8; ++i) {
    const double p = rn::mul(static_cast<double>(e8p_coeff(w, i)), sh.v[i]);
    if (i == 0 || p < mn) {
      mn = p;
      jmin = i;
    }
  }
  const uint32_t odd = e8p_need_odd(w);
  uint32_t neg = sh.neg_mask;
  uint32_t par = neg;
  par ^= par >> 4;
  par ^= par >> 2;
  par ^= par >> 1;
  if ((par & 1u) != odd) neg ^= 1u << jmin;
  uint32_t b = 0;
  for (int i = 0; i < 8; ++i)
    if ((neg >> i) & 1u) b |= 1u << sigma(i);
  b ^= odd << 7;
  if (shift == 1) b ^= 1u;
  return (static_cast<uint32_t>(a) << 8) | b;
}

/// Exact nearest E8P12 codeword of x (all 512 candidates, the rules in the file comment).
CALDERA_HD inline uint32_t e8p_nearest(const float x[8]) {
  double best_key[2];
  int best_a[2];
  E8pShift sh[2];
  for (int t = 0; t < 2; ++t) {
    sh[t] = e8p_prepare_shift(x, t);
    best_key[t] = e8p_candidate_key(sh[t], packed_abs(0));
    best_a[t] = 0;
    for (int a = 1; a < 256; ++a) {
      const double k = e8p_candidate_key(sh[t], packed_abs(a));
      if (k < best_key[t]) {
        best_key[t] = k;
        best_a[t] = a;
      }
    }
  }
  const int t = rn::sub(best_key[0], best_key[1]) <= e8p_sum_x4(x) ? 0 : 1;
  return e8p_make_code(sh[t], best_a[t], packed_abs(best_a[t]), t);
}

// ---- E81B (§5.6) -------------------------------------------------------------------------------

/// Decodes E81B index g into v[0..7].
CALDERA_HD inline void e81b_decode(uint32_t g, float v[8]) {
  const uint32_t w = e81b_packed(static_cast<int>(g & 0xFFu));
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(static_cast<int>((w >> (4 * i)) & 15u) - 4) * 0.5f;
}

/// Score 4·(2⟨r, g⟩ − ‖g‖²) of E81B entry with packed word w (larger is nearer), in double.
CALDERA_HD inline double e81b_score(const float r[8], uint32_t w) {
  double dot = 0.0;
  int ng2 = 0;
  for (int i = 0; i < 8; ++i) {
    const int g2 = static_cast<int>((w >> (4 * i)) & 15u) - 4;
    ng2 += g2 * g2;
    dot = rn::add(dot, rn::mul(static_cast<double>(r[i]), static_cast<double>(g2)));
  }
  return rn::sub(rn::mul(4.0, dot), static_cast<double>(ng2));
}

/// Exact nearest E81B entry (arg-max of the score; ties go to the lower index).
CALDERA_HD inline uint32_t e81b_nearest(const float r[8]) {
  double best = e81b_score(r, e81b_packed(0));
  uint32_t best_g = 0;
  for (int g = 1; g < 256; ++g) {
    const double s = e81b_score(r, e81b_packed(g));
    if (s > best) {
      best = s;
      best_g = static_cast<uint32_t>(g);
    }
  }
  return best_g;
}

// ---- codebook-level encode / decode (§5.6) -------------------------------------------------------

/// Residual r_i = (x_i − v1_i) · σ_r, rounded in this order.
CALDERA_HD inline void rvq_residual(const float x[8], const float v1[8], float residual_scale, float r[8]) {
  for (int i = 0; i < 8; ++i) r[i] = rn::mul(rn::sub(x[i], v1[i]), residual_scale);
}
/// x̂_i = v1_i + v2_i / σ_r.
CALDERA_HD inline void rvq_combine(const float v1[8], const float v2[8], float residual_scale, float xhat[8]) {
  for (int i = 0; i < 8; ++i) xhat[i] = rn::add(v1[i], rn::div(v2[i], residual_scale));
}

/// Decodes one 8-vector. Codes: E8P12 → c (16 bit); RVQ → (c1 << 16) | c2 (c2 is 16-bit E8P for
/// 4B, 8-bit E81B for 3B).
CALDERA_HD inline void lattice_decode8(LatticeCodebook cb, float residual_scale, uint32_t code, float xhat[8]) {
  if (cb == LatticeCodebook::kE8P12) {
    e8p_decode(code & 0xFFFFu, xhat);
    return;
  }
  float v1[8], v2[8];
  e8p_decode(code >> 16, v1);
  if (cb == LatticeCodebook::kE8P12RVQ4B)
    e8p_decode(code & 0xFFFFu, v2);
  else
    e81b_decode(code & 0xFFu, v2);
  rvq_combine(v1, v2, residual_scale, xhat);
}

/// The reference exact search as a functor (see lattice_encode8_with).
struct E8pNearestRef {
  CALDERA_HD uint32_t operator()(const float x[8]) const { return e8p_nearest(x); }
};

/// Nearest-codeword encoding of one 8-vector (each stage exact); writes the reconstruction.
/// `nearest` must return exactly e8p_nearest(x) (a faster equivalent may be supplied).
template <class Nearest>
CALDERA_HD inline uint32_t lattice_encode8_with(const Nearest& nearest, LatticeCodebook cb, float residual_scale,
                                                const float x[8], float xhat[8]) {
  const uint32_t c1 = nearest(x);
  if (cb == LatticeCodebook::kE8P12) {
    e8p_decode(c1, xhat);
    return c1;
  }
  float v1[8], r[8], v2[8];
  e8p_decode(c1, v1);
  rvq_residual(x, v1, residual_scale, r);
  uint32_t c2;
  if (cb == LatticeCodebook::kE8P12RVQ4B) {
    c2 = nearest(r);
    e8p_decode(c2, v2);
  } else {
    c2 = e81b_nearest(r);
    e81b_decode(c2, v2);
  }
  rvq_combine(v1, v2, residual_scale, xhat);
  return (c1 << 16) | c2;
}

CALDERA_HD inline uint32_t lattice_encode8(LatticeCodebook cb, float residual_scale, const float x[8], float xhat[8]) {
  return lattice_encode8_with(E8pNearestRef{}, cb, residual_scale, x, xhat);
}

}  // namespace e8p
// ---- uniform scalar grid (spqr.md §4.1; GPTQ/RTN variant asvd-svdllm.md §7) -----------------------

enum class ScalarSymmetry : uint8_t { kAsymmetric, kSymmetric };
/// kDataOnly: [lo, hi] = [min, max] of the group (SpQR). kIncludeZero: the range is widened to
/// contain 0 (GPTQ / RTN baselines).
enum class ScalarRange : uint8_t { kDataOnly, kIncludeZero };
/// kFloat: z = −lo/s kept fractional (SpQR). kRounded: z = rint(−lo/s) (GPTQ / RTN).
enum class ZeroPoint : uint8_t { kFloat, kRounded };

namespace scalar {

/// Round half to even (the current rounding mode is never changed in this project).
CALDERA_HD inline float round_half_even(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  return __builtin_rintf(v);
#endif
}

/// (scale, zero) of a group with extremes lo ≤ hi:
///   kIncludeZero: lo = min(lo, 0), hi = max(hi, 0); symmetric: hi = max(|lo|, hi), lo = −hi if lo < 0;
///   lo == hi → [−1, +1]; s = (hi − lo)/(2^bits − 1);
///   z = 2^bits / 2 (symmetric) | −lo/s (kFloat) | rint(−lo/s) (kRounded).
CALDERA_HD inline void grid_from_range(float lo, float hi, int bits, ScalarSymmetry sym, ScalarRange range,
                                       ZeroPoint zp, float* scale, float* zero) {
  if (range == ScalarRange::kIncludeZero) {
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
  }
  if (sym == ScalarSymmetry::kSymmetric) {
    const float alo = lo < 0.0f ? -lo : lo;
    hi = alo > hi ? alo : hi;
    if (lo < 0.0f) lo = -hi;
  }
  if (lo == hi) {
    lo = -1.0f;
    hi = 1.0f;
  }
  const float maxq = static_cast<float>((1 << bits) - 1);
  const float s = e8p::rn::div(e8p::rn::sub(hi, lo), maxq);
  *scale = s;
  if (sym == ScalarSymmetry::kSymmetric)
    *zero = static_cast<float>(1 << (bits - 1));
  else if (zp == ZeroPoint::kRounded)
    *zero = round_half_even(e8p::rn::div(-lo, s));
  else
    *zero = e8p::rn::div(-lo, s);
}

/// q = clamp(rint(x / max(s, 1e-9) + z), 0, 2^bits − 1).
CALDERA_HD inline uint32_t quantize(float x, float scale, float zero, int bits) {
  const float s = scale > 1e-9f ? scale : 1e-9f;
  const float q = round_half_even(e8p::rn::add(e8p::rn::div(x, s), zero));
  const float maxq = static_cast<float>((1 << bits) - 1);
  // NaN compares false both ways and lands on 0.
  if (!(q > 0.0f)) return 0u;
  return q >= maxq ? static_cast<uint32_t>(maxq) : static_cast<uint32_t>(q);
}

/// x̂ = s·(q − z).
CALDERA_HD inline float dequantize(uint32_t q, float scale, float zero) {
  return e8p::rn::mul(scale, e8p::rn::sub(static_cast<float>(q), zero));
}

}  // namespace scalar
}  // namespace caldera
