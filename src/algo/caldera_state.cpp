#include "algo/caldera_state.h"

#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/lattice.h"

namespace caldera::algo::detail {

using linalg::Backend;
using linalg::Op;

LatticeCodebook codebook_for_bits(int bits) {
  switch (bits) {
    case 2: return LatticeCodebook::kE8P12;
    case 3: return LatticeCodebook::kE8P12RVQ3B;
    case 4: return LatticeCodebook::kE8P12RVQ4B;
    default: raise<ConfigError>("lattice bit width must be 2, 3 or 4, got ", bits);
  }
}

namespace {

int64_t scalar_i64(const TensorMap& in, const std::string& name) {
  const Tensor& t = require_tensor(in, name, "CALDERA unit");
  CALDERA_CHECK(t.dtype == DType::kI64 && t.numel() == 1, "CALDERA unit: tensor '", name,
                "' must be an I64 scalar, found ", dtype_name(t.dtype), " with ", t.numel(), " elements");
  return t.as<int64_t>()[0];
}

Tensor i64_scalar(int64_t v) { return make_tensor<int64_t>(DType::kI64, {}, &v); }
Tensor f32_scalar(float v) { return make_tensor<float>(DType::kF32, {}, &v); }

float f32_scalar_of(const TensorMap& in, const std::string& name) {
  const Tensor& t = require_tensor(in, name, "CALDERA unit");
  CALDERA_CHECK(t.dtype == DType::kF32 && t.numel() == 1, "CALDERA unit: tensor '", name,
                "' must be an F32 scalar, found ", dtype_name(t.dtype), " with ", t.numel(), " elements");
  return t.as<float>()[0];
}

}  // namespace

LrSpec LrSpec::make(int64_t rank, int bits, FactorFormat format, FactorScaleMode scales) {
  LrSpec s;
  s.rank = rank;
  s.bits = bits;
  if (rank == 0 || bits == 16) {
    s.format = LrFormat::kFp16;
    s.bits = 16;
    return s;
  }
  s.quantizer = make_factor_quantizer(format, bits, scales);
  s.format = format == FactorFormat::kUniform
                 ? LrFormat::kUniform
                 : (scales == FactorScaleMode::kPerRow ? LrFormat::kE8pPerRow : LrFormat::kE8pPerTensor);
  return s;
}

LrSpec LrSpec::from_tensors(const TensorMap& in) {
  const int64_t rank = scalar_i64(in, "rank");
  if (rank == 0) return make(0, 16, FactorFormat::kE8p, FactorScaleMode::kPerTensor);
  const int64_t fmt = scalar_i64(in, "lr_format");
  const int bits = static_cast<int>(scalar_i64(in, "lr_bits"));
  switch (static_cast<LrFormat>(fmt)) {
    case LrFormat::kFp16: return make(rank, 16, FactorFormat::kE8p, FactorScaleMode::kPerTensor);
    case LrFormat::kE8pPerTensor: return make(rank, bits, FactorFormat::kE8p, FactorScaleMode::kPerTensor);
    case LrFormat::kE8pPerRow: return make(rank, bits, FactorFormat::kE8p, FactorScaleMode::kPerRow);
    case LrFormat::kUniform: return make(rank, bits, FactorFormat::kUniform, FactorScaleMode::kPerRow);
  }
  raise<Error>("CALDERA unit: unknown lr_format ", fmt, " (expected 0..3)");
}

double LrSpec::storage_bits(int64_t m, int64_t n) const {
  if (rank == 0) return 0.0;
  const double codes = static_cast<double>(rank) * bits * static_cast<double>(m + n);
  return quantizer ? codes + 2.0 * quantizer->scale_bits(rank) : codes;
}

CalderaState CalderaState::zeros(Backend& be, int64_t m, int64_t n, int64_t k) {
  CalderaState s;
  s.q = be.make<float>(m, n, "caldera.q");
  be.fill(s.q.view(), 0.0f);
  s.q_codes = be.make<uint32_t>(m, n / 8, "caldera.q_codes");
  s.lt.values = be.make<float>(k, m, "caldera.lt");
  s.r.values = be.make<float>(k, n, "caldera.r");
  s.l = be.make<float>(m, k, "caldera.l");
  if (k > 0) {
    be.fill(s.lt.values.view(), 0.0f);
    be.fill(s.r.values.view(), 0.0f);
    be.fill(s.l.view(), 0.0f);
  }
  return s;
}

void CalderaState::copy_to(Backend& be, CalderaState& dst) const {
  if (!same_shape(dst.q.cview(), q.cview())) dst.q = be.make<float>(q.rows(), q.cols(), "caldera.q");
  be.copy(q.cview(), dst.q.view());
  if (!same_shape(dst.q_codes.cview(), q_codes.cview()))
    dst.q_codes = be.make<uint32_t>(q_codes.rows(), q_codes.cols(), "caldera.q_codes");
  be.copy(q_codes.cview(), dst.q_codes.view());
  dst.q_scale = q_scale;
  copy_factor(be, lt, dst.lt);
  copy_factor(be, r, dst.r);
  if (!same_shape(dst.l.cview(), l.cview())) dst.l = be.make<float>(l.rows(), l.cols(), "caldera.l");
  be.copy(l.cview(), dst.l.view());
}

void CalderaState::compose(Backend& be, MatrixView<float> w_hat) const {
  be.copy(q.cview(), w_hat);
  if (l.cols() > 0) be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, l.cview(), r.values.cview(), 1.0f, w_hat);
}

void dequantize_q(Backend& be, MatrixView<const uint32_t> codes, LatticeCodebook codebook, float scale,
                  MatrixView<float> q) {
  be.quant().lattice_decode(codes, codebook, lattice_default_residual_scale(codebook), q);
  be.scale(q, scale);
}

void store_state(Backend& be, const CalderaState& s, int bits_q, const LrSpec& lr, const std::string& prefix,
                 TensorMap& out) {
  const auto codebook = codebook_for_bits(bits_q);
  const auto codes = be.download(s.q_codes);
  out[prefix + "q_bits"] = i64_scalar(bits_q);
  out[prefix + "q_codes"] = make_tensor(DType::kI64, quant::pack_lattice_codes(codes.cview(), codebook));
  out[prefix + "q_scale"] = f32_scalar(s.q_scale);
  out[prefix + "rank"] = i64_scalar(lr.rank);
  if (lr.rank == 0) return;
  out[prefix + "lr_format"] = i64_scalar(static_cast<int64_t>(lr.format));
  out[prefix + "lr_bits"] = i64_scalar(lr.bits);
  if (lr.format == LrFormat::kFp16) {
    auto to_f16 = [](const HostMatrix<float>& x) {
      std::vector<uint16_t> h(static_cast<size_t>(x.size()));
      for (int64_t i = 0; i < x.size(); ++i) h[static_cast<size_t>(i)] = f32_to_f16(x.data()[i]);
      return make_tensor<uint16_t>(DType::kF16, {x.rows(), x.cols()}, h.data());
    };
    out[prefix + "l"] = to_f16(be.download(s.l));
    out[prefix + "r"] = to_f16(be.download(s.r.values));
    return;
  }
  lr.quantizer->store(be, s.lt, prefix + "lt", out);
  lr.quantizer->store(be, s.r, prefix + "r", out);
}

CalderaState load_state(Backend& be, const TensorMap& in, int bits_q, const LrSpec& lr, const std::string& prefix,
                        int64_t m, int64_t n) {
  const auto codebook = codebook_for_bits(bits_q);
  const int64_t k = lr.rank;
  CALDERA_CHECK(scalar_i64(in, prefix + "q_bits") == bits_q && scalar_i64(in, prefix + "rank") == k,
                "CALDERA unit: stored q_bits/rank (", scalar_i64(in, prefix + "q_bits"), ", ",
                scalar_i64(in, prefix + "rank"), ") differ from the expected (", bits_q, ", ", k, ")");
  CalderaState s = CalderaState::zeros(be, m, n, k);
  const Tensor& qc = require_tensor(in, prefix + "q_codes", "CALDERA unit");
  const int64_t packed_cols = n * bits_q / 64;
  CALDERA_CHECK(qc.dtype == DType::kI64 && qc.shape == std::vector<int64_t>({m, packed_cols}),
                "CALDERA unit: q_codes must be I64 [", m, ", ", packed_cols, "]");
  const auto codes = quant::unpack_lattice_codes(qc.matrix<int64_t>(), codebook, n);
  be.upload(codes.cview(), s.q_codes.view());
  s.q_scale = f32_scalar_of(in, prefix + "q_scale");
  dequantize_q(be, s.q_codes.cview(), codebook, s.q_scale, s.q.view());
  if (k == 0) return s;
  if (lr.format == LrFormat::kFp16) {
    auto from_f16 = [&](const std::string& name, int64_t rows, int64_t cols) {
      const Tensor& t = require_tensor(in, prefix + name, "CALDERA unit");
      CALDERA_CHECK(t.dtype == DType::kF16 && t.shape == std::vector<int64_t>({rows, cols}), "CALDERA unit: '",
                    prefix + name, "' must be F16 [", rows, ", ", cols, "]");
      HostMatrix<float> x(rows, cols);
      for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = f16_to_f32(t.as<uint16_t>()[i]);
      return x;
    };
    be.upload(from_f16("l", m, k).cview(), s.l.view());
    be.upload(from_f16("r", k, n).cview(), s.r.values.view());
    be.transpose(s.l.cview(), s.lt.values.view());
    return s;
  }
  s.lt = lr.quantizer->load(be, in, prefix + "lt", k, m);
  s.r = lr.quantizer->load(be, in, prefix + "r", k, n);
  be.transpose(s.lt.values.cview(), s.l.view());
  return s;
}

}  // namespace caldera::algo::detail
