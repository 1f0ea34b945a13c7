// The decoder-layer forward pass (model/forward.h) and RoPE frequencies (model/rope.h) on the
// backend selected at compile time (CALDERA_TEST_BACKEND_CUDA), against a straightforward fp64
// host evaluation of the Hugging Face Llama layer on a small synthetic config with GQA and every
// bias switched on. Built as test_forward_cpu (unit) and test_forward_cuda (parity;gpu).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "linalg/backend.h"
#include "model/forward.h"
#include "model/rope.h"
#include "model/synthetic_weights.h"
#include "test_util.h"

namespace caldera::model {
namespace {

using linalg::BackendKind;
using test::rel_diff;

constexpr BackendKind kKind = CALDERA_TEST_BACKEND_CUDA ? BackendKind::kCuda : BackendKind::kCpu;
constexpr double kLayerTol = 1e-5;  // fp32 layer vs fp64 definition, relative Frobenius

LlamaConfig small_config(bool biases) {
  LlamaConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;  // q_dim 64 != hidden 48, as head_dim may be set independently
  c.vocab_size = 300;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500.0;  // small theta: fast rotations even over short sequences
  c.max_position_embeddings = 64;
  c.attention_bias = biases;
  c.o_proj_bias = biases;
  c.mlp_bias = biases;
  return c;
}

// ---- fp64 host reference of one decoder layer --------------------------------------------------
using Mat = std::vector<std::vector<double>>;

Mat to_mat(const HostMatrix<float>& m) {
  Mat r(static_cast<size_t>(m.rows()), std::vector<double>(static_cast<size_t>(m.cols())));
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) r[static_cast<size_t>(i)][static_cast<size_t>(j)] = m(i, j);
  return r;
}

Mat linear_ref(const Mat& x, const HostMatrix<float>& w, const HostMatrix<float>& b) {
  Mat y(x.size(), std::vector<double>(static_cast<size_t>(w.rows()), 0.0));
  for (size_t t = 0; t < x.size(); ++t)
    for (int64_t o = 0; o < w.rows(); ++o) {
      double acc = b.size() > 0 ? b.data()[o] : 0.0;
      for (int64_t i = 0; i < w.cols(); ++i) acc += x[t][static_cast<size_t>(i)] * w(o, i);
      y[t][static_cast<size_t>(o)] = acc;
    }
  return y;
}

Mat rms_ref(const Mat& x, const HostMatrix<float>& w, double eps) {
  Mat y = x;
  for (auto& row : y) {
    double ss = 0;
    for (double v : row) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(row.size()) + eps);
    for (size_t j = 0; j < row.size(); ++j) row[j] *= r * w.data()[j];
  }
  return y;
}

void rope_ref(Mat& x, int64_t n_heads, int64_t hd, int64_t seq_len, const std::vector<float>& inv_freq) {
  for (size_t t = 0; t < x.size(); ++t)
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < hd / 2; ++i) {
        const double a = static_cast<double>(static_cast<int64_t>(t) % seq_len) * inv_freq[static_cast<size_t>(i)];
        auto& p = x[t];
        const size_t i0 = static_cast<size_t>(h * hd + i), i1 = i0 + static_cast<size_t>(hd / 2);
        const double x0 = p[i0], x1 = p[i1];
        p[i0] = x0 * std::cos(a) - x1 * std::sin(a);
        p[i1] = x1 * std::cos(a) + x0 * std::sin(a);
      }
}

struct LayerRef {
  Mat out;
  std::array<Mat, 4> inputs;  // qkv, o, up, down
};

LayerRef layer_ref(const LlamaConfig& c, const LayerHostWeights& w, const Mat& h_in, int64_t seq_len) {
  using K = LinearKind;
  LayerRef r;
  Mat h = h_in;
  const size_t n_tok = h.size();
  const auto hd = static_cast<size_t>(c.head_dim);
  const auto bias = [&](K k) -> const HostMatrix<float>& { return w.bias[static_cast<size_t>(k)]; };
  r.inputs[0] = rms_ref(h, w.input_norm, c.rms_norm_eps);
  Mat q = linear_ref(r.inputs[0], w[K::kQ], bias(K::kQ));
  Mat k = linear_ref(r.inputs[0], w[K::kK], bias(K::kK));
  const Mat v = linear_ref(r.inputs[0], w[K::kV], bias(K::kV));
  const auto inv_freq = rope_inv_freq(c);
  rope_ref(q, c.num_attention_heads, c.head_dim, seq_len, inv_freq);
  rope_ref(k, c.num_key_value_heads, c.head_dim, seq_len, inv_freq);
  Mat ctx(n_tok, std::vector<double>(static_cast<size_t>(c.q_dim()), 0.0));
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  for (size_t t = 0; t < n_tok; ++t) {
    const size_t s0 = t - t % static_cast<size_t>(seq_len);
    for (int64_t head = 0; head < c.num_attention_heads; ++head) {
      const auto g = static_cast<size_t>(head / c.kv_group_size());
      std::vector<double> p;
      double m = -1e300;
      for (size_t j = s0; j <= t; ++j) {
        double d = 0;
        for (size_t e = 0; e < hd; ++e) d += q[t][static_cast<size_t>(head) * hd + e] * k[j][g * hd + e];
        p.push_back(d * scale);
        m = std::max(m, p.back());
      }
      double sum = 0;
      for (double& x : p) sum += (x = std::exp(x - m));
      for (size_t e = 0; e < hd; ++e) {
        double o = 0;
        for (size_t j = s0; j <= t; ++j) o += p[j - s0] * v[j][g * hd + e];
        ctx[t][static_cast<size_t>(head) * hd + e] = o / sum;
      }
    }
  }
  r.inputs[1] = ctx;
  const Mat attn = linear_ref(ctx, w[K::kO], bias(K::kO));
  for (size_t t = 0; t < n_tok; ++t)
    for (size_t j = 0; j < h[t].size(); ++j) h[t][j] += attn[t][j];
  r.inputs[2] = rms_ref(h, w.post_attention_norm, c.rms_norm_eps);
  const Mat gate = linear_ref(r.inputs[2], w[K::kGate], bias(K::kGate));
  const Mat upm = linear_ref(r.inputs[2], w[K::kUp], bias(K::kUp));
  Mat act = gate;
  for (size_t t = 0; t < n_tok; ++t)
    for (size_t j = 0; j < act[t].size(); ++j) act[t][j] = gate[t][j] / (1.0 + std::exp(-gate[t][j])) * upm[t][j];
  r.inputs[3] = act;
  const Mat down = linear_ref(act, w[K::kDown], bias(K::kDown));
  for (size_t t = 0; t < n_tok; ++t)
    for (size_t j = 0; j < h[t].size(); ++j) h[t][j] += down[t][j];
  r.out = h;
  return r;
}

double rel_diff_mat(const HostMatrix<float>& got, const Mat& ref) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < got.rows(); ++i)
    for (int64_t j = 0; j < got.cols(); ++j) {
      const double r = ref[static_cast<size_t>(i)][static_cast<size_t>(j)];
      num += (got(i, j) - r) * (got(i, j) - r);
      den += r * r;
    }
  return std::sqrt(num / den);
}

class ForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CALDERA_REQUIRE_BACKEND(kKind);
    be_ = linalg::make_backend(kKind);
  }
  std::unique_ptr<linalg::Backend> be_;
};

TEST(Rope, DefaultFrequenciesFollowTheta) {
  LlamaConfig c = small_config(false);
  c.head_dim = 128;
  c.rope_theta = 10000.0;
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_EQ(f[0], 1.0f);
  for (size_t i = 0; i < f.size(); ++i)
    EXPECT_NEAR(f[i], std::pow(10000.0, -static_cast<double>(2 * i) / 128.0), 1e-7 * f[i]) << i;
}

TEST(Rope, TableDtypeRoundsLikeATransformersBuffer) {
  LlamaConfig c = small_config(false);
  c.head_dim = 64;
  c.rope_theta = 10000.0;
  const auto f32 = rope_inv_freq(c);
  const auto bf16 = rope_inv_freq(c, DType::kBF16);
  const auto f16 = rope_inv_freq(c, DType::kF16);
  EXPECT_EQ(rope_inv_freq(c, DType::kF64), f32);
  int changed = 0;
  for (size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(bf16[i], bf16_to_f32(f32_to_bf16(f32[i]))) << i;
    EXPECT_EQ(f16[i], f16_to_f32(f32_to_f16(f32[i]))) << i;
    EXPECT_LE(std::abs(bf16[i] - f32[i]), f32[i] * 0x1p-8f) << i;
    changed += bf16[i] != f32[i];
  }
  EXPECT_GT(changed, 20);  // nearly every frequency loses bits in bf16
}

TEST(Rope, Llama3ScalingBands) {
  // Llama-3.1-8B: theta 500000, factor 8, low 1, high 4, original context 8192, head_dim 128.
  LlamaConfig c = small_config(false);
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  LlamaConfig scaled = c;
  scaled.rope_scaling = {RopeScalingType::kLlama3, 8.0, 1.0, 4.0, 8192};
  const auto base = rope_inv_freq(c);
  const auto f = rope_inv_freq(scaled);
  int high = 0, low = 0, mid = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / base[i];
    if (wavelen < 8192.0 / 4.0) {  // high frequency: kept
      EXPECT_EQ(f[i], base[i]) << i;
      ++high;
    } else if (wavelen > 8192.0) {  // low frequency: divided by the factor
      EXPECT_NEAR(f[i], base[i] / 8.0, 1e-6 * f[i]) << i;
      ++low;
    } else {  // smooth interpolation, strictly between the two
      const double s = (8192.0 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(f[i], (1 - s) * base[i] / 8.0 + s * base[i], 1e-6 * f[i]) << i;
      EXPECT_LT(f[i], base[i]);
      EXPECT_GT(f[i], base[i] / 8.0);
      ++mid;
    }
  }
  // All three bands occur for these settings (wavelengths from 2π to ~2.8e6).
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
  EXPECT_EQ(f[0], 1.0f);
}

TEST_F(ForwardTest, LayerMatchesHostReferenceWithBiasesAndTaps) {
  for (bool biases : {true, false}) {
    const LlamaConfig c = small_config(biases);
    const SyntheticWeightSource src(c, 7);
    const auto host_w = src.load_layer(1);
    const int64_t seq_len = 11, n_seqs = 3, tokens = seq_len * n_seqs;
    const auto h0 = test::random_normal(tokens, c.hidden_size, 21);
    const LayerRef ref = layer_ref(c, host_w, to_mat(h0), seq_len);

    const auto w = LayerWeights::upload(*be_, c, 1, host_w, DType::kF32);
    auto hidden = be_->upload(h0.cview(), "hidden");
    HessianTaps taps(*be_, c);
    forward_layer(*be_, c, w, hidden.view(), seq_len, &taps);
    EXPECT_LT(rel_diff_mat(be_->download(hidden), ref.out), kLayerTol) << "biases " << biases;

    for (HessianInput input : kAllHessianInputs) {
      const Mat& x = ref.inputs[static_cast<size_t>(input)];
      const int64_t n = c.hessian_input_dim(input);
      ASSERT_EQ(taps.dim(input), n);
      EXPECT_EQ(taps.count(input), tokens);
      HostMatrix<float> sum_ref(n, n), mu_ref(1, n);
      double sum_err = 0, sum_norm = 0, mu_err = 0, mu_norm = 0;
      const auto got = taps.sum(input);
      const auto mu = taps.mu_sum(input);
      for (int64_t i = 0; i < n; ++i) {
        double m = 0;
        for (const auto& row : x) m += row[static_cast<size_t>(i)];
        mu_err += (mu(0, i) - m) * (mu(0, i) - m);
        mu_norm += m * m;
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (const auto& row : x) s += row[static_cast<size_t>(i)] * row[static_cast<size_t>(j)];
          sum_err += (got(i, j) - s) * (got(i, j) - s);
          sum_norm += s * s;
          ASSERT_EQ(got(i, j), got(j, i)) << to_string(input) << " not symmetric at " << i << "," << j;
        }
      }
      EXPECT_LT(std::sqrt(sum_err / sum_norm), kLayerTol) << to_string(input);
      EXPECT_LT(std::sqrt(mu_err / mu_norm), kLayerTol) << to_string(input);
      // ASVD statistics: Σ|x| and max|x| per channel.
      const auto sum_abs = taps.sum_abs(input);
      const auto max_abs = be_->download(taps.max_abs(input));
      for (int64_t i = 0; i < n; ++i) {
        double sa = 0, ma = 0;
        for (const auto& row : x) {
          sa += std::abs(row[static_cast<size_t>(i)]);
          ma = std::max(ma, std::abs(row[static_cast<size_t>(i)]));
        }
        EXPECT_NEAR(sum_abs(0, i), sa, kLayerTol * (sa + 1e-3)) << to_string(input) << " channel " << i;
        EXPECT_NEAR(max_abs(0, i), ma, kLayerTol * (ma + 1e-3)) << to_string(input) << " channel " << i;
      }
    }
  }
}

TEST_F(ForwardTest, MicroBatchingDoesNotChangeTheResult) {
  const LlamaConfig c = small_config(false);
  const SyntheticWeightSource src(c, 3);
  const auto w = LayerWeights::load(*be_, src, 0);
  const auto h0 = test::random_normal(5 * 9, c.hidden_size, 4);
  auto all = be_->upload(h0.cview(), "all");
  auto split = be_->upload(h0.cview(), "split");
  HessianTaps taps_all(*be_, c), taps_split(*be_, c);
  forward_layer_batched(*be_, c, w, all.view(), {9, 5, 64}, &taps_all);
  forward_layer_batched(*be_, c, w, split.view(), {9, 2, 64}, &taps_split);  // batches of 2, 2, 1 sequences
  EXPECT_LT(rel_diff(be_->download(split), be_->download(all)), 1e-6);
  for (HessianInput input : kAllHessianInputs) {
    EXPECT_EQ(taps_split.count(input), 45);
    // The sums are exact, but BLAS libraries may pick another kernel (or another split over
    // threads) for another number of rows, so the activations entering the taps can differ in the
    // last bits; phase 1 therefore keeps micro-batches identical across world sizes.
    EXPECT_LT(rel_diff(taps_split.sum(input), taps_all.sum(input)), 1e-6) << to_string(input);
  }
}

TEST_F(ForwardTest, SequenceNllMatchesLogSoftmax) {
  const LlamaConfig c = small_config(false);
  const SyntheticWeightSource src(c, 5);
  const int64_t seq_len = 6, tokens = 2 * seq_len;
  const auto h = test::random_normal(tokens, c.hidden_size, 8);
  std::vector<uint32_t> raw(tokens);
  for (int64_t t = 0; t < tokens; ++t) raw[static_cast<size_t>(t)] = static_cast<uint32_t>((t * 37 + 11) % c.vocab_size);
  const auto ids = checked_token_ids(c, raw, seq_len);
  const auto norm = src.load_final_norm();
  const auto head = src.load_lm_head();
  const Mat x = rms_ref(to_mat(h), norm, c.rms_norm_eps);
  auto dh = be_->upload(h.cview(), "h");
  const auto nll = final_token_nll(*be_, src, dh.cview(), ids, {seq_len, 1, 100});
  ASSERT_EQ(nll.size(), static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    if (t % seq_len == seq_len - 1) {
      EXPECT_EQ(nll[static_cast<size_t>(t)], 0.0) << "last position of a sequence predicts nothing";
      continue;
    }
    std::vector<double> logits(static_cast<size_t>(c.vocab_size));
    double m = -1e300;
    for (int64_t v = 0; v < c.vocab_size; ++v) {
      double d = 0;
      for (int64_t j = 0; j < c.hidden_size; ++j) d += x[static_cast<size_t>(t)][static_cast<size_t>(j)] * head(v, j);
      logits[static_cast<size_t>(v)] = d;
      m = std::max(m, d);
    }
    double s = 0;
    for (double l : logits) s += std::exp(l - m);
    const double ref = m + std::log(s) - logits[static_cast<size_t>(ids[static_cast<size_t>(t + 1)])];
    EXPECT_NEAR(nll[static_cast<size_t>(t)], ref, 1e-5 * (1 + ref)) << t;
  }
}

TEST(TokenIds, OutOfVocabularyAndPartialSequencesAreRejected) {
  const LlamaConfig c = small_config(false);
  const std::vector<uint32_t> ok = {0, 1, 299, 5};
  EXPECT_EQ(checked_token_ids(c, ok, 2).size(), 4u);
  const std::vector<uint32_t> bad = {0, 1, 300, 5};
  try {
    (void)checked_token_ids(c, bad, 2);
    FAIL() << "id 300 accepted with vocab 300";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("position 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)checked_token_ids(c, ok, 3), Error);
}

TEST(ForwardOptionsTest, ValidateNamesTheOption) {
  ForwardOptions o;
  o.micro_batch_seqs = 0;
  try {
    o.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--micro-batch"), std::string::npos);
  }
}

}  // namespace
}  // namespace caldera::model
