// CPU neural-network facet: the reference implementation of linalg/nn_kernels.h.
#include "linalg/cpu/cpu_nn_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "linalg/cpu/cpu_backend.h"

namespace caldera::linalg {
namespace {

/// Parallelise a token loop only when it is worth waking the OpenMP team.
constexpr int64_t kParallelMinElems = 1 << 15;

/// Masked softmax of one row of attention scores in place: entries [0, n_valid) become
/// exp(s - max) / Σ, entries [n_valid, row_len) become 0. Sum in fp64.
void causal_softmax_row(float* s, int64_t n_valid, int64_t row_len) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n_valid; ++j) m = std::max(m, s[j]);
  double sum = 0;
  for (int64_t j = 0; j < n_valid; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < n_valid; ++j) s[j] *= inv;
  for (int64_t j = n_valid; j < row_len; ++j) s[j] = 0.0f;
}

}  // namespace

void CpuNnKernels::embedding(MatrixView<const float> table, MatrixView<const int32_t> ids, MatrixView<float> out) {
  nn_detail::check_embedding(table, ids, out);
  const int32_t* id = ids.data;
  for (int64_t t = 0; t < out.rows; ++t)
    CALDERA_CHECK(id[t] >= 0 && id[t] < table.rows, "embedding: token id ", id[t], " at position ", t,
                  " outside the vocabulary [0, ", table.rows, ")");
#pragma omp parallel for schedule(static) if (out.size() > kParallelMinElems)
  for (int64_t t = 0; t < out.rows; ++t) std::copy_n(table.row(id[t]), out.cols, out.row(t));
}

void CpuNnKernels::rms_norm(MatrixView<const float> x, MatrixView<const float> weight, float eps, MatrixView<float> y) {
  nn_detail::check_rms_norm(x, weight, y);
  const float* w = weight.data;
  const int64_t n = x.cols;
#pragma omp parallel for schedule(static) if (x.size() > kParallelMinElems)
  for (int64_t t = 0; t < x.rows; ++t) {
    const float* xr = x.row(t);
    double ss = 0;
    for (int64_t j = 0; j < n; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    const float mean_sq = static_cast<float>(ss / static_cast<double>(n));
    const float r = 1.0f / std::sqrt(mean_sq + eps);
    float* yr = y.row(t);
    for (int64_t j = 0; j < n; ++j) yr[j] = w[j] * (xr[j] * r);
  }
}

void CpuNnKernels::rope(MatrixView<float> x, int64_t n_heads, int64_t head_dim, int64_t seq_len,
                        MatrixView<const float> inv_freq) {
  nn_detail::check_rope(x, n_heads, head_dim, seq_len, inv_freq);
  const int64_t half = head_dim / 2;
  const float* f = inv_freq.data;
#pragma omp parallel
  {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < x.rows; ++t) {
      const float pos = static_cast<float>(t % seq_len);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = pos * f[i];  // fp32 product, as transformers' inv_freq @ position_ids
        cs[static_cast<size_t>(i)] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sn[static_cast<size_t>(i)] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
      for (int64_t h = 0; h < n_heads; ++h) {
        float* p = x.row(t) + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = p[i], b = p[i + half];
          const float c = cs[static_cast<size_t>(i)], s = sn[static_cast<size_t>(i)];
          p[i] = a * c - b * s;
          p[i + half] = b * c + a * s;
        }
      }
    }
  }
}

void CpuNnKernels::causal_attention(MatrixView<const float> q, MatrixView<const float> k, MatrixView<const float> v,
                                    const AttentionShape& shape, float scale, MatrixView<float> out) {
  nn_detail::check_attention(q, k, v, shape, out);
  const int64_t len = shape.seq_len, hd = shape.head_dim;
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const int64_t n_seqs = q.rows / len;
  HostMatrix<float> scores(std::min(kAttentionBlockRows, len), len);
  for (int64_t s = 0; s < n_seqs; ++s)
    for (int64_t h = 0; h < shape.n_heads; ++h) {
      const int64_t g = h / group;
      const auto qh = q.block(s * len, h * hd, len, hd);
      const auto kg = k.block(s * len, g * hd, len, hd);
      const auto vg = v.block(s * len, g * hd, len, hd);
      const auto oh = out.block(s * len, h * hd, len, hd);
      for (int64_t r0 = 0; r0 < len; r0 += kAttentionBlockRows) {
        const int64_t nr = std::min(kAttentionBlockRows, len - r0);
        const int64_t n_keys = r0 + nr;  // keys [0, n_keys) are visible to some query of this block
        auto sb = scores.view().block(0, 0, nr, n_keys);
        backend_.gemm(Op::kNoTrans, Op::kTrans, scale, qh.rows_range(r0, nr), kg.rows_range(0, n_keys), 0.0f, sb);
        for (int64_t i = 0; i < nr; ++i) causal_softmax_row(sb.row(i), r0 + i + 1, n_keys);
        backend_.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, MatrixView<const float>(sb), vg.rows_range(0, n_keys), 0.0f,
                      oh.rows_range(r0, nr));
      }
    }
}

void CpuNnKernels::silu_mul(MatrixView<const float> gate, MatrixView<const float> up, MatrixView<float> out) {
  nn_detail::check_silu_mul(gate, up, out);
#pragma omp parallel for schedule(static) if (out.size() > kParallelMinElems)
  for (int64_t t = 0; t < out.rows; ++t) {
    const float* g = gate.row(t);
    const float* u = up.row(t);
    float* o = out.row(t);
    for (int64_t j = 0; j < out.cols; ++j) {
      const float gj = g[j];
      o[j] = gj / (1.0f + std::exp(-gj)) * u[j];
    }
  }
}

void CpuNnKernels::add_bias(MatrixView<float> x, MatrixView<const float> bias) {
  nn_detail::check_add_bias(x, bias);
  const float* b = bias.data;
#pragma omp parallel for schedule(static) if (x.size() > kParallelMinElems)
  for (int64_t t = 0; t < x.rows; ++t) {
    float* r = x.row(t);
    for (int64_t j = 0; j < x.cols; ++j) r[j] += b[j];
  }
}

void CpuNnKernels::add_column_sums(MatrixView<const float> x, MatrixView<double> sums) {
  nn_detail::check_column_sums(x, sums);
  double* out = sums.data;
  constexpr int64_t kColBlock = 256;
#pragma omp parallel for schedule(static) if (x.size() > kParallelMinElems)
  for (int64_t j0 = 0; j0 < x.cols; j0 += kColBlock) {
    const int64_t nc = std::min(kColBlock, x.cols - j0);
    double acc[kColBlock] = {};
    for (int64_t t = 0; t < x.rows; ++t) {
      const float* r = x.row(t) + j0;
      for (int64_t j = 0; j < nc; ++j) acc[j] += r[j];
    }
    for (int64_t j = 0; j < nc; ++j) out[j0 + j] += acc[j];
  }
}

void CpuNnKernels::add_column_abs_stats(MatrixView<const float> x, MatrixView<double> sum_abs,
                                        MatrixView<double> max_abs) {
  nn_detail::check_column_abs_stats(x, sum_abs, max_abs);
  constexpr int64_t kColBlock = 256;
#pragma omp parallel for schedule(static) if (x.size() > kParallelMinElems)
  for (int64_t j0 = 0; j0 < x.cols; j0 += kColBlock) {
    const int64_t nc = std::min(kColBlock, x.cols - j0);
    double acc[kColBlock] = {};
    double mx[kColBlock];
    for (int64_t j = 0; j < nc; ++j) mx[j] = max_abs.data[j0 + j];
    for (int64_t t = 0; t < x.rows; ++t) {
      const float* r = x.row(t) + j0;
      for (int64_t j = 0; j < nc; ++j) {
        const double a = std::fabs(static_cast<double>(r[j]));
        acc[j] += a;
        mx[j] = a > mx[j] ? a : mx[j];
      }
    }
    for (int64_t j = 0; j < nc; ++j) {
      sum_abs.data[j0 + j] += acc[j];
      max_abs.data[j0 + j] = mx[j];
    }
  }
}

void CpuNnKernels::token_nll(MatrixView<const float> hidden, MatrixView<const float> lm_head,
                             MatrixView<const int32_t> targets, int64_t vocab_chunk, MatrixView<double> nll) {
  nn_detail::check_token_nll(hidden, lm_head, targets, vocab_chunk, nll);
  const int64_t tokens = hidden.rows, vocab = lm_head.rows;
  const int32_t* tgt = targets.data;
  for (int64_t t = 0; t < tokens; ++t)
    CALDERA_CHECK(tgt[t] >= -1 && tgt[t] < vocab, "token_nll: target id ", tgt[t], " at position ", t,
                  " outside [-1, ", vocab, ")");
  if (tokens == 0) return;
  const int64_t chunk = std::min(vocab_chunk, vocab);
  std::vector<float> run_max(static_cast<size_t>(tokens), -std::numeric_limits<float>::infinity());
  std::vector<double> run_sum(static_cast<size_t>(tokens), 0.0);
  std::vector<float> target_logit(static_cast<size_t>(tokens), 0.0f);
  HostMatrix<float> logits(tokens, chunk);
  for (int64_t v0 = 0; v0 < vocab; v0 += chunk) {
    const int64_t nv = std::min(chunk, vocab - v0);
    auto lv = logits.view().cols_range(0, nv);
    backend_.gemm(Op::kNoTrans, Op::kTrans, 1.0f, hidden, lm_head.rows_range(v0, nv), 0.0f, lv);
#pragma omp parallel for schedule(static) if (tokens * nv > kParallelMinElems)
    for (int64_t t = 0; t < tokens; ++t) {
      const float* l = lv.row(t);
      const auto ts = static_cast<size_t>(t);
      float cm = run_max[ts];
      for (int64_t j = 0; j < nv; ++j) cm = std::max(cm, l[j]);
      double acc = run_sum[ts] * std::exp(static_cast<double>(run_max[ts]) - static_cast<double>(cm));
      for (int64_t j = 0; j < nv; ++j) acc += std::exp(l[j] - cm);
      run_max[ts] = cm;
      run_sum[ts] = acc;
      if (tgt[t] >= v0 && tgt[t] < v0 + nv) target_logit[ts] = l[tgt[t] - v0];
    }
  }
  double* out = nll.data;
  for (int64_t t = 0; t < tokens; ++t) {
    const auto ts = static_cast<size_t>(t);
    out[t] = tgt[t] < 0 ? 0.0
                        : (static_cast<double>(run_max[ts]) - static_cast<double>(target_logit[ts])) +
                              std::log(run_sum[ts]);
  }
}

}  // namespace caldera::linalg
