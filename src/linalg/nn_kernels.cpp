// Argument validation of the neural-network facet, shared by the CPU and CUDA implementations.
#include "linalg/nn_kernels.h"

#include <cstdint>
#include <utility>

namespace caldera::linalg::nn_detail {
namespace {

template <class T>
bool is_vector(MatrixView<T> v, int64_t n) {
  return v.size() == n && (v.rows == 1 || (v.cols == 1 && v.ld == 1));
}

/// Byte range [begin, end) spanned by a view (empty views span nothing).
template <class T>
std::pair<uintptr_t, uintptr_t> span_of(MatrixView<T> v) {
  if (v.empty()) return {0, 0};
  const auto begin = reinterpret_cast<uintptr_t>(v.data);
  return {begin, begin + static_cast<uintptr_t>(((v.rows - 1) * v.ld + v.cols) * static_cast<int64_t>(sizeof(T)))};
}

template <class A, class B>
bool overlap(MatrixView<A> a, MatrixView<B> b) {
  const auto [a0, a1] = span_of(a);
  const auto [b0, b1] = span_of(b);
  return a0 < b1 && b0 < a1;
}

}  // namespace

void check_embedding(MatrixView<const float> table, MatrixView<const int32_t> ids, MatrixView<float> out) {
  CALDERA_CHECK(is_vector(ids, out.rows), "embedding: ids must be a contiguous vector of ", out.rows,
                " entries (one per output row), got ", ids.rows, "x", ids.cols);
  CALDERA_CHECK(table.cols == out.cols, "embedding: table has ", table.cols, " columns, out has ", out.cols);
}

void check_rms_norm(MatrixView<const float> x, MatrixView<const float> weight, MatrixView<float> y) {
  CALDERA_CHECK(same_shape(x, y), "rms_norm: x ", x.rows, "x", x.cols, " vs y ", y.rows, "x", y.cols);
  CALDERA_CHECK(is_vector(weight, x.cols), "rms_norm: weight must be a vector of ", x.cols, " entries, got ",
                weight.rows, "x", weight.cols);
  CALDERA_CHECK(x.data != y.data || x.ld == y.ld, "rms_norm: in-place call with different ld");
}

void check_rope(MatrixView<float> x, int64_t n_heads, int64_t head_dim, int64_t seq_len,
                MatrixView<const float> inv_freq) {
  CALDERA_CHECK(n_heads > 0 && head_dim > 0 && head_dim % 2 == 0, "rope: need n_heads > 0 and an even head_dim, got ",
                n_heads, " heads of ", head_dim);
  CALDERA_CHECK(x.cols == n_heads * head_dim, "rope: x has ", x.cols, " columns, expected ", n_heads, " heads x ",
                head_dim);
  CALDERA_CHECK(seq_len > 0 && x.rows % seq_len == 0, "rope: ", x.rows, " tokens are not whole sequences of ",
                seq_len);
  CALDERA_CHECK(is_vector(inv_freq, head_dim / 2), "rope: inv_freq must be a vector of ", head_dim / 2,
                " entries, got ", inv_freq.rows, "x", inv_freq.cols);
}

void check_attention(MatrixView<const float> q, MatrixView<const float> k, MatrixView<const float> v,
                     const AttentionShape& s, MatrixView<float> out) {
  CALDERA_CHECK(s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0 && s.n_heads % s.n_kv_heads == 0,
                "causal_attention: ", s.n_heads, " query heads cannot be grouped over ", s.n_kv_heads, " kv heads");
  CALDERA_CHECK(s.seq_len > 0 && q.rows % s.seq_len == 0, "causal_attention: ", q.rows,
                " tokens are not whole sequences of ", s.seq_len);
  CALDERA_CHECK(q.cols == s.n_heads * s.head_dim && same_shape(q, out), "causal_attention: q ", q.rows, "x", q.cols,
                " and out ", out.rows, "x", out.cols, " must be tokens x ", s.n_heads, "*", s.head_dim);
  CALDERA_CHECK(k.rows == q.rows && k.cols == s.n_kv_heads * s.head_dim && same_shape(k, v), "causal_attention: k ",
                k.rows, "x", k.cols, " and v ", v.rows, "x", v.cols, " must be ", q.rows, " x ", s.n_kv_heads, "*",
                s.head_dim);
  CALDERA_CHECK(!overlap(MatrixView<const float>(out), q) && !overlap(MatrixView<const float>(out), k) &&
                    !overlap(MatrixView<const float>(out), v),
                "causal_attention: out must not overlap q, k or v");
}

void check_silu_mul(MatrixView<const float> gate, MatrixView<const float> up, MatrixView<float> out) {
  CALDERA_CHECK(same_shape(gate, up) && same_shape(gate, out), "silu_mul: gate ", gate.rows, "x", gate.cols, ", up ",
                up.rows, "x", up.cols, ", out ", out.rows, "x", out.cols);
}

void check_add_bias(MatrixView<float> x, MatrixView<const float> bias) {
  CALDERA_CHECK(is_vector(bias, x.cols), "add_bias: bias must be a vector of ", x.cols, " entries, got ", bias.rows,
                "x", bias.cols);
}

void check_column_sums(MatrixView<const float> x, MatrixView<double> sums) {
  CALDERA_CHECK(is_vector(sums, x.cols), "add_column_sums: sums must be a vector of ", x.cols, " entries, got ",
                sums.rows, "x", sums.cols);
}

void check_column_abs_stats(MatrixView<const float> x, MatrixView<double> sum_abs, MatrixView<double> max_abs) {
  CALDERA_CHECK(is_vector(sum_abs, x.cols) && is_vector(max_abs, x.cols), "add_column_abs_stats: sum_abs and max_abs ",
                "must be vectors of ", x.cols, " entries, got ", sum_abs.rows, "x", sum_abs.cols, " and ", max_abs.rows,
                "x", max_abs.cols);
}

void check_token_nll(MatrixView<const float> hidden, MatrixView<const float> lm_head, MatrixView<const int32_t> targets,
                     int64_t vocab_chunk, MatrixView<double> nll) {
  CALDERA_CHECK(lm_head.cols == hidden.cols, "token_nll: lm_head ", lm_head.rows, "x", lm_head.cols,
                " does not match hidden width ", hidden.cols);
  CALDERA_CHECK(lm_head.rows > 0, "token_nll: empty vocabulary");
  CALDERA_CHECK(vocab_chunk > 0, "token_nll: vocab_chunk must be positive, got ", vocab_chunk);
  CALDERA_CHECK(is_vector(targets, hidden.rows), "token_nll: targets must be a vector of ", hidden.rows,
                " entries, got ", targets.rows, "x", targets.cols);
  CALDERA_CHECK(is_vector(nll, hidden.rows), "token_nll: nll must be a vector of ", hidden.rows, " entries, got ",
                nll.rows, "x", nll.cols);
}

}  // namespace caldera::linalg::nn_detail
