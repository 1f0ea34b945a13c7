// The neural-network facet (linalg/nn_kernels.h) on the backend selected at compile time
// (CALDERA_TEST_BACKEND_CUDA 0 or 1), each op against a straightforward fp64 host evaluation of
// its definition. Built as test_nn_kernels_cpu (label unit) and test_nn_kernels_cuda (parity;gpu).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "linalg/backend.h"
#include "linalg/nn_kernels.h"
#include "test_util.h"

namespace caldera::linalg {
namespace {

using test::random_normal;
using test::rel_diff;

constexpr BackendKind kKind = CALDERA_TEST_BACKEND_CUDA ? BackendKind::kCuda : BackendKind::kCpu;
// fp32 kernels against fp64 definitions: a few ulps per element, relative Frobenius.
constexpr double kElementwiseTol = 2e-6;
constexpr double kAttentionTol = 2e-5;
constexpr double kNllAbsTol = 2e-5;

class NnKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CALDERA_REQUIRE_BACKEND(kKind);
    be_ = make_backend(kKind);
  }
  template <class T>
  Matrix<T> up(const HostMatrix<T>& h) {
    return be_->upload(h.view(), "test");
  }
  template <class T>
  HostMatrix<T> down(const Matrix<T>& m) {
    return be_->download(m);
  }
  NnKernels& nn() { return be_->nn(); }
  std::unique_ptr<Backend> be_;
};

HostMatrix<int32_t> ids_of(const std::vector<int32_t>& v) {
  return HostMatrix<int32_t>(1, static_cast<int64_t>(v.size()), v);
}

TEST_F(NnKernelsTest, EmbeddingGathersRows) {
  const auto table = random_normal(50, 24, 1);
  const std::vector<int32_t> ids = {3, 0, 49, 3, 17, 8, 8};
  auto out = be_->make<float>(static_cast<int64_t>(ids.size()), 24, "out");
  nn().embedding(up(table).cview(), up(ids_of(ids)).cview(), out.view());
  const auto got = down(out);
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t j = 0; j < 24; ++j) ASSERT_EQ(got(static_cast<int64_t>(t), j), table(ids[t], j));
}

TEST_F(NnKernelsTest, EmbeddingRejectsBadShapes) {
  auto table = up(random_normal(10, 8, 1));
  auto ids = up(ids_of({1, 2, 3}));
  auto out = be_->make<float>(3, 7, "out");
  EXPECT_THROW(nn().embedding(table.cview(), ids.cview(), out.view()), Error);
}

TEST_F(NnKernelsTest, EmbeddingOutOfRangeIdIsNeverSilent) {
  auto table = up(random_normal(10, 8, 1));
  auto ids = up(ids_of({1, 10, 3}));
  auto out = be_->make<float>(3, 8, "out");
  if (kKind == BackendKind::kCpu) {
    EXPECT_THROW(nn().embedding(table.cview(), ids.cview(), out.view()), Error);
  } else {
    nn().embedding(table.cview(), ids.cview(), out.view());
    const auto got = down(out);
    EXPECT_TRUE(std::isnan(got(1, 0)));
    EXPECT_FALSE(std::isnan(got(0, 0)));
  }
}

TEST_F(NnKernelsTest, RmsNormMatchesDefinitionAndWorksInPlace) {
  for (int64_t n : {1, 64, 257, 4096}) {
    auto x = random_normal(13, n, 2);
    for (int64_t j = 0; j < n; ++j) x(3, j) *= 100.0f;  // a row with large activations
    auto w = random_normal(1, n, 3);
    const float eps = 1e-5f;
    HostMatrix<double> ref(13, n);
    for (int64_t t = 0; t < 13; ++t) {
      double ss = 0;
      for (int64_t j = 0; j < n; ++j) ss += static_cast<double>(x(t, j)) * x(t, j);
      const double r = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
      for (int64_t j = 0; j < n; ++j) ref(t, j) = w(0, j) * x(t, j) * r;
    }
    auto dx = up(x);
    auto dw = up(w);
    auto y = be_->make<float>(13, n, "y");
    nn().rms_norm(dx.cview(), dw.cview(), eps, y.view());
    EXPECT_LT(rel_diff(down(y), ref), kElementwiseTol) << "n=" << n;
    nn().rms_norm(dx.cview(), dw.cview(), eps, dx.view());  // in place
    EXPECT_LT(rel_diff(down(dx), ref), kElementwiseTol) << "in place, n=" << n;
  }
}

// Reference RoPE (HF rotate_half) in fp64 on fp32-rounded angles.
HostMatrix<double> rope_ref(const HostMatrix<float>& x, int64_t n_heads, int64_t hd, int64_t seq_len,
                            const HostMatrix<float>& inv_freq) {
  HostMatrix<double> r(x.rows(), x.cols());
  const int64_t half = hd / 2;
  for (int64_t t = 0; t < x.rows(); ++t)
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(t % seq_len) * inv_freq(0, i);
        const double c = std::cos(static_cast<double>(angle)), s = std::sin(static_cast<double>(angle));
        const double a = x(t, h * hd + i), b = x(t, h * hd + i + half);
        r(t, h * hd + i) = a * c - b * s;
        r(t, h * hd + i + half) = b * c + a * s;
      }
  return r;
}

TEST_F(NnKernelsTest, RopeMatchesRotateHalfOnStridedView) {
  const int64_t n_heads = 3, hd = 32, seq_len = 40, n_seqs = 2, tokens = n_seqs * seq_len;
  HostMatrix<float> inv_freq(1, hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i)
    inv_freq(0, i) = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * static_cast<double>(i) / hd));
  // q occupies columns [8, 8 + 96) of a wider buffer, as a block of a fused projection.
  const auto wide = random_normal(tokens, 8 + n_heads * hd + 5, 4);
  HostMatrix<float> x(MatrixView<const float>(wide.view().block(0, 8, tokens, n_heads * hd)));
  const auto ref = rope_ref(x, n_heads, hd, seq_len, inv_freq);
  auto dwide = up(wide);
  auto dq = dwide.view().block(0, 8, tokens, n_heads * hd);
  nn().rope(dq, n_heads, hd, seq_len, up(inv_freq).cview());
  const auto got_wide = down(dwide);
  HostMatrix<float> got(MatrixView<const float>(got_wide.view().block(0, 8, tokens, n_heads * hd)));
  EXPECT_LT(rel_diff(got, ref), kElementwiseTol);
  // Columns outside the view are untouched, and position 0 of each sequence is the identity.
  for (int64_t t = 0; t < tokens; ++t) {
    ASSERT_EQ(got_wide(t, 0), wide(t, 0));
    ASSERT_EQ(got_wide(t, 8 + n_heads * hd), wide(t, 8 + n_heads * hd));
  }
  for (int64_t j = 0; j < n_heads * hd; ++j) ASSERT_EQ(got(seq_len, j), x(seq_len, j));
}

// Reference causal GQA attention in fp64.
HostMatrix<double> attention_ref(const HostMatrix<float>& q, const HostMatrix<float>& k, const HostMatrix<float>& v,
                                 const AttentionShape& s, float scale) {
  const int64_t hd = s.head_dim, len = s.seq_len, group = s.n_heads / s.n_kv_heads;
  HostMatrix<double> out(q.rows(), q.cols());
  std::vector<double> p(static_cast<size_t>(len));
  for (int64_t seq = 0; seq < q.rows() / len; ++seq)
    for (int64_t h = 0; h < s.n_heads; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < len; ++i) {
        const int64_t ti = seq * len + i;
        double m = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double d = 0;
          for (int64_t c = 0; c < hd; ++c) d += static_cast<double>(q(ti, h * hd + c)) * k(seq * len + j, g * hd + c);
          p[static_cast<size_t>(j)] = scale * d;
          m = std::max(m, p[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - m));
        for (int64_t c = 0; c < hd; ++c) {
          double o = 0;
          for (int64_t j = 0; j <= i; ++j) o += p[static_cast<size_t>(j)] * v(seq * len + j, g * hd + c);
          out(ti, h * hd + c) = o / sum;
        }
      }
    }
  return out;
}

struct AttentionCase {
  int64_t n_heads, n_kv_heads, head_dim, seq_len, n_seqs;
  float scale;
};

TEST_F(NnKernelsTest, CausalAttentionMatchesDefinition) {
  // seq_len 70 and 130 cross the CPU's 64-row blocks; the scale 2.0 case has peaked softmaxes.
  const AttentionCase cases[] = {{4, 2, 16, 70, 3, 0.25f}, {2, 2, 8, 1, 4, 0.35f},
                                 {8, 2, 64, 130, 2, 0.125f}, {3, 1, 32, 33, 1, 2.0f}};
  for (const auto& c : cases) {
    const AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, c.seq_len};
    const int64_t tokens = c.seq_len * c.n_seqs;
    // q, k, v as column blocks of one fused projection output (ld > cols).
    const int64_t qc = c.n_heads * c.head_dim, kc = c.n_kv_heads * c.head_dim;
    const auto qkv = random_normal(tokens, qc + 2 * kc, 5);
    const HostMatrix<float> q(MatrixView<const float>(qkv.view().cols_range(0, qc)));
    const HostMatrix<float> k(MatrixView<const float>(qkv.view().cols_range(qc, kc)));
    const HostMatrix<float> v(MatrixView<const float>(qkv.view().cols_range(qc + kc, kc)));
    const auto ref = attention_ref(q, k, v, shape, c.scale);
    auto d = up(qkv);
    auto out = be_->make<float>(tokens, qc, "out");
    nn().causal_attention(d.cview().cols_range(0, qc), d.cview().cols_range(qc, kc), d.cview().cols_range(qc + kc, kc),
                          shape, c.scale, out.view());
    EXPECT_LT(rel_diff(down(out), ref), kAttentionTol)
        << "heads " << c.n_heads << "/" << c.n_kv_heads << " hd " << c.head_dim << " len " << c.seq_len;
  }
}

TEST_F(NnKernelsTest, CausalAttentionIgnoresTheFutureAndOtherSequences) {
  const AttentionShape shape{2, 1, 16, 50};
  const int64_t tokens = 100;
  auto q = random_normal(tokens, 32, 6), k = random_normal(tokens, 16, 7), v = random_normal(tokens, 16, 8);
  auto run = [&](const HostMatrix<float>& kk, const HostMatrix<float>& vv) {
    auto out = be_->make<float>(tokens, 32, "out");
    nn().causal_attention(up(q).cview(), up(kk).cview(), up(vv).cview(), shape, 0.25f, out.view());
    return down(out);
  };
  const auto base = run(k, v);
  // Perturb keys/values of position 30 of sequence 0: rows < 30 and all of sequence 1 must not move.
  for (int64_t j = 0; j < 16; ++j) {
    k(30, j) += 3.0f;
    v(30, j) -= 5.0f;
  }
  const auto moved = run(k, v);
  for (int64_t t = 0; t < tokens; ++t) {
    const bool may_change = t >= 30 && t < 50;
    bool changed = false;
    for (int64_t j = 0; j < 32; ++j) changed |= moved(t, j) != base(t, j);
    EXPECT_EQ(changed, may_change) << "row " << t;
  }
}

TEST_F(NnKernelsTest, AttentionRejectsOverlapAndBadGrouping) {
  auto x = be_->make<float>(8, 32, "x");
  be_->fill(x.view(), 0.0f);
  auto k = be_->make<float>(8, 16, "k");
  be_->fill(k.view(), 0.0f);
  EXPECT_THROW(nn().causal_attention(x.cview(), k.cview(), k.cview(), {2, 1, 16, 4}, 1.0f, x.view()), Error);
  auto out = be_->make<float>(8, 32, "out");
  EXPECT_THROW(nn().causal_attention(x.cview(), k.cview(), k.cview(), {2, 3, 16, 4}, 1.0f, out.view()), Error);
  EXPECT_THROW(nn().causal_attention(x.cview(), k.cview(), k.cview(), {2, 1, 16, 3}, 1.0f, out.view()), Error);
}

TEST_F(NnKernelsTest, SiluMulAndBias) {
  const auto gu = random_normal(37, 2 * 45, 9);
  auto d = up(gu);
  auto out = be_->make<float>(37, 45, "out");
  nn().silu_mul(d.cview().cols_range(0, 45), d.cview().cols_range(45, 45), out.view());
  const auto bias = random_normal(1, 45, 10);
  nn().add_bias(out.view(), up(bias).cview());
  HostMatrix<double> ref(37, 45);
  for (int64_t t = 0; t < 37; ++t)
    for (int64_t j = 0; j < 45; ++j) {
      const double g = gu(t, j);
      ref(t, j) = g / (1.0 + std::exp(-g)) * gu(t, 45 + j) + bias(0, j);
    }
  EXPECT_LT(rel_diff(down(out), ref), kElementwiseTol);
  // In place into the gate columns.
  nn().silu_mul(d.cview().cols_range(0, 45), d.cview().cols_range(45, 45), d.view().cols_range(0, 45));
  const auto got = down(d);
  EXPECT_NEAR(got(5, 7), gu(5, 7) / (1.0 + std::exp(-static_cast<double>(gu(5, 7)))) * gu(5, 52), 1e-5);
}

TEST_F(NnKernelsTest, ColumnSumsAccumulateInDouble) {
  auto x = random_normal(1000, 300, 11);
  for (int64_t t = 0; t < 1000; ++t) x(t, 0) = 1e7f + static_cast<float>(t % 3);  // fp32 sums would lose these
  HostMatrix<double> sums(1, 300);
  for (int64_t j = 0; j < 300; ++j) sums(0, j) = 0.5;
  HostMatrix<double> ref(sums.view());
  for (int64_t t = 0; t < 1000; ++t)
    for (int64_t j = 0; j < 300; ++j) ref(0, j) += x(t, j);
  auto ds = up(sums);
  nn().add_column_sums(up(x).cview(), ds.view());
  const auto got = down(ds);
  for (int64_t j = 0; j < 300; ++j) ASSERT_NEAR(got(0, j), ref(0, j), 1e-9 * (1 + std::abs(ref(0, j)))) << j;
}

TEST_F(NnKernelsTest, ColumnAbsStatsAccumulateSumAndMax) {
  // ASVD statistics: Σ|x| in fp64 (rows beyond one 256-row chunk) and a running max of |x|.
  auto x = random_normal(700, 130, 14);
  for (int64_t t = 0; t < 700; ++t) x(t, 3) = -1e7f - static_cast<float>(t % 3);
  x(611, 5) = -40.0f;  // the max comes from a negative entry in a later chunk
  HostMatrix<double> sum_abs(1, 130), max_abs(1, 130);
  for (int64_t j = 0; j < 130; ++j) {
    sum_abs(0, j) = 0.25;
    max_abs(0, j) = j == 7 ? 1000.0 : 0.5;  // an earlier larger max is kept
  }
  HostMatrix<double> ref_sum(sum_abs.view()), ref_max(max_abs.view());
  for (int64_t t = 0; t < 700; ++t)
    for (int64_t j = 0; j < 130; ++j) {
      ref_sum(0, j) += std::abs(static_cast<double>(x(t, j)));
      ref_max(0, j) = std::max(ref_max(0, j), std::abs(static_cast<double>(x(t, j))));
    }
  auto ds = up(sum_abs);
  auto dm = up(max_abs);
  nn().add_column_abs_stats(up(x).cview(), ds.view(), dm.view());
  const auto got_sum = down(ds);
  const auto got_max = down(dm);
  for (int64_t j = 0; j < 130; ++j) {
    ASSERT_NEAR(got_sum(0, j), ref_sum(0, j), 1e-9 * (1 + ref_sum(0, j))) << j;
    ASSERT_EQ(got_max(0, j), ref_max(0, j)) << j;
  }
  EXPECT_EQ(got_max(0, 5), 40.0);
  EXPECT_EQ(got_max(0, 7), 1000.0);
  HostMatrix<double> wrong(1, 129);
  auto dw = up(wrong);
  EXPECT_THROW(nn().add_column_abs_stats(up(x).cview(), dw.view(), dm.view()), Error);
}

TEST_F(NnKernelsTest, TokenNllStreamsTheVocabulary) {
  const int64_t tokens = 29, n = 40, vocab = 1000;
  auto hidden = random_normal(tokens, n, 12);
  const auto head = random_normal(vocab, n, 13);
  for (int64_t j = 0; j < n; ++j) hidden(4, j) *= 8.0f;  // logits of magnitude ~300: needs max subtraction
  std::vector<int32_t> targets(tokens);
  for (int64_t t = 0; t < tokens; ++t) targets[static_cast<size_t>(t)] = static_cast<int32_t>((t * 97 + 5) % vocab);
  targets[3] = -1;
  targets[10] = 999;
  targets[11] = 0;
  std::vector<double> ref(static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> l(static_cast<size_t>(vocab));
    double m = -1e300;
    for (int64_t w = 0; w < vocab; ++w) {
      double d = 0;
      for (int64_t j = 0; j < n; ++j) d += static_cast<double>(hidden(t, j)) * head(w, j);
      l[static_cast<size_t>(w)] = d;
      m = std::max(m, d);
    }
    double s = 0;
    for (double d : l) s += std::exp(d - m);
    const int32_t tg = targets[static_cast<size_t>(t)];
    ref[static_cast<size_t>(t)] = tg < 0 ? 0.0 : m + std::log(s) - l[static_cast<size_t>(tg)];
  }
  auto dh = up(hidden);
  auto dw = up(head);
  auto dt = up(ids_of(targets));
  for (int64_t chunk : {int64_t{128}, int64_t{333}, int64_t{1000}, int64_t{4096}}) {
    auto nll = be_->make<double>(1, tokens, "nll");
    nn().token_nll(dh.cview(), dw.cview(), dt.cview(), chunk, nll.view());
    const auto got = down(nll);
    for (int64_t t = 0; t < tokens; ++t)
      ASSERT_NEAR(got(0, t), ref[static_cast<size_t>(t)], kNllAbsTol * (1 + ref[static_cast<size_t>(t)]))
          << "token " << t << " chunk " << chunk;
    EXPECT_EQ(got(0, 3), 0.0);
  }
}

}  // namespace
}  // namespace caldera::linalg
