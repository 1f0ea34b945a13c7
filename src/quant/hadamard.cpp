// Construction of the K×K Hadamard factors (spec caldera-quipsharp.md Appendix A) and of Had_n.
#include "quant/hadamard.h"

#include <array>
#include <string_view>

#include "core/error.h"

namespace caldera::quant {

namespace {

/// The reference's K in its order of preference (§4.1).
constexpr std::array<int32_t, 12> kReferenceOrder = {172, 156, 140, 124, 116, 108, 60, 52, 36, 28, 20, 12};

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

bool is_prime(int64_t q) {
  if (q < 2) return false;
  for (int64_t d = 2; d * d <= q; ++d)
    if (q % d == 0) return false;
  return true;
}

/// χ_q(a) for a in [0, q): 0, +1 (nonzero square) or −1.
std::vector<int8_t> quadratic_character(int64_t q) {
  std::vector<int8_t> chi(static_cast<size_t>(q), -1);
  chi[0] = 0;
  for (int64_t x = 1; x < q; ++x) chi[static_cast<size_t>((x * x) % q)] = 1;
  return chi;
}

int64_t mod(int64_t a, int64_t q) { return ((a % q) + q) % q; }

/// Paley I, K = q + 1: H[0][0] = 1, H[0][j] = −1, H[i][0] = 1, H[i][j] = δ_ij + χ(i − j).
std::vector<int8_t> paley1(int64_t q) {
  const int64_t k = q + 1;
  const auto chi = quadratic_character(q);
  std::vector<int8_t> h(static_cast<size_t>(k * k));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      int v;
      if (i == 0)
        v = j == 0 ? 1 : -1;
      else if (j == 0)
        v = 1;
      else
        v = (i == j ? 1 : 0) + chi[static_cast<size_t>(mod(i - j, q))];
      h[static_cast<size_t>(i * k + j)] = static_cast<int8_t>(v);
    }
  return h;
}

/// Paley II, K = 2(q + 1): S with S[0][0] = 0, S[0][j] = S[j][0] = 1, S[i][j] = χ(j − i);
/// H = [[S + I, S − I], [S − I, −S − I]].
std::vector<int8_t> paley2(int64_t q) {
  const int64_t b = q + 1, k = 2 * b;
  const auto chi = quadratic_character(q);
  std::vector<int> s(static_cast<size_t>(b * b));
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < b; ++j)
      s[static_cast<size_t>(i * b + j)] =
          (i == 0 && j == 0) ? 0 : (i == 0 || j == 0) ? 1 : chi[static_cast<size_t>(mod(j - i, q))];
  std::vector<int8_t> h(static_cast<size_t>(k * k));
  for (int64_t bi = 0; bi < 2; ++bi)
    for (int64_t bj = 0; bj < 2; ++bj)
      for (int64_t i = 0; i < b; ++i)
        for (int64_t j = 0; j < b; ++j) {
          const int sv = s[static_cast<size_t>(i * b + j)], id = i == j ? 1 : 0;
          const int v = (bi == 1 && bj == 1) ? -sv - id : (bi == 0 && bj == 0) ? sv + id : sv - id;
          h[static_cast<size_t>((bi * b + i) * k + bj * b + j)] = static_cast<int8_t>(v);
        }
  return h;
}

struct WilliamsonRows {
  int32_t k;
  std::string_view a, b, c, d;
};

// First rows of the symmetric circulant blocks A, B, C, D (Appendix A).
constexpr std::array<WilliamsonRows, 5> kWilliamson = {{
    {52, "+-+--++++--+-", "+---++++++---", "++-+--++--+-+", "+----+--+----"},
    {116, "++--+--+-+++-++++-+++-+--+--+", "++++-++-+---++++++---+-++-+++", "+-+---++--+-++++++-+--++---+-",
     "+++---++--+-+----+-+--++---++"},
    {124, "+--+++-+--+----++----+--+-+++--", "+--+++-+--+----++----+--+-+++--", "+-----+++-+-+--++--+-+-+++-----",
     "++++++---+-+-++--++-+-+---+++++"},
    {156, "+++--+-+-----+--++----++--+-----+-+--++", "++++---+--++----+-+--+-+----++--+---+++",
     "+++--++-+---+-+--+----+--+-+---+-++--++", "+---++-+-+-----+++-++-+++-----+-+-++---"},
    {172, "+---++--++++-+-+++-++--++-+++-+-++++--++---", "++-++++++----+-+--++-++-++--+-+----++++++-+",
     "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++", "++---++++-+--+--++--------++--+--+-++++---+"},
}};

/// Williamson array H = [[A, B, C, D], [−B, A, −D, C], [−C, D, A, −B], [−D, −C, B, A]] with
/// X[i][j] = x[(j − i) mod b].
std::vector<int8_t> williamson(const WilliamsonRows& w) {
  const int64_t b = static_cast<int64_t>(w.a.size()), k = 4 * b;
  CALDERA_CHECK(k == w.k && w.b.size() == w.a.size() && w.c.size() == w.a.size() && w.d.size() == w.a.size(),
                "Williamson table for K = ", w.k, " is malformed");
  const std::string_view rows[4] = {w.a, w.b, w.c, w.d};
  // Block layout: which generator (0..3 = A..D) and sign sits at block (bi, bj).
  constexpr int kGen[4][4] = {{0, 1, 2, 3}, {1, 0, 3, 2}, {2, 3, 0, 1}, {3, 2, 1, 0}};
  constexpr int kSign[4][4] = {{1, 1, 1, 1}, {-1, 1, -1, 1}, {-1, 1, 1, -1}, {-1, -1, 1, 1}};
  std::vector<int8_t> h(static_cast<size_t>(k * k));
  for (int bi = 0; bi < 4; ++bi)
    for (int bj = 0; bj < 4; ++bj)
      for (int64_t i = 0; i < b; ++i)
        for (int64_t j = 0; j < b; ++j) {
          const char ch = rows[kGen[bi][bj]][static_cast<size_t>(mod(j - i, b))];
          const int v = (ch == '+' ? 1 : -1) * kSign[bi][bj];
          h[static_cast<size_t>((bi * b + i) * k + bj * b + j)] = static_cast<int8_t>(v);
        }
  return h;
}

bool paley1_order(int64_t k) { return k >= 4 && is_prime(k - 1) && (k - 1) % 4 == 3; }
bool paley2_order(int64_t k) { return k >= 4 && k % 2 == 0 && is_prime(k / 2 - 1) && (k / 2 - 1) % 4 == 1; }
bool buildable(int64_t k) {
  if (k == 1) return true;
  for (const auto& w : kWilliamson)
    if (w.k == k) return true;
  return paley1_order(k) || paley2_order(k);
}

}  // namespace

std::vector<int8_t> hadamard_matrix(int32_t k) {
  if (k == 1) return {1};
  for (const auto& w : kWilliamson)
    if (w.k == k) return williamson(w);
  if (paley1_order(k)) return paley1(k - 1);
  if (paley2_order(k)) return paley2(k / 2 - 1);
  raise<ConfigError>("Hadamard order K = ", k,
                     " has no construction here (need a Williamson K of Appendix A, K = q+1 for a prime q ≡ 3 mod 4, "
                     "or K = 2(q+1) for a prime q ≡ 1 mod 4)");
}

HadamardFactor hadamard_factor(int64_t n) {
  CALDERA_CHECK_AS(ConfigError, n >= 1 && n <= kMaxHadamardDim, "Hadamard transform: dimension n = ", n,
                   " is outside [1, ", kMaxHadamardDim, "]");
  int64_t k = 0;
  for (int32_t cand : kReferenceOrder)
    if (n % cand == 0 && is_pow2(n / cand)) {
      k = cand;
      break;
    }
  if (k == 0 && is_pow2(n)) k = 1;
  if (k == 0) {
    int64_t odd = n;
    while (odd % 2 == 0) odd /= 2;
    for (int64_t cand = 4 * odd; cand <= n && n % cand == 0; cand *= 2)
      if (buildable(cand)) {
        k = cand;
        break;
      }
  }
  if (k == 0)
    raise<ConfigError>("Hadamard transform: no construction covers dimension n = ", n,
                       "; n must be K·2^p with K = 1, a K of the reference list (12, 20, 28, 36, 52, 60, 108, 116, 124, "
                       "140, 156, 172), K = q+1 for a prime q ≡ 3 (mod 4) or K = 2(q+1) for a prime q ≡ 1 (mod 4)");
  HadamardFactor f;
  f.n = n;
  f.k = static_cast<int32_t>(k);
  f.p = n / k;
  f.hk = hadamard_matrix(f.k);
  return f;
}

void had_rows(linalg::Backend& backend, MatrixView<float> x, const HadamardFactor& factor, linalg::Op op) {
  backend.quant().hadamard_rows(x, factor, op, {}, {});
}

}  // namespace caldera::quant
