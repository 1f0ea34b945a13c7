#include "algo/factor_quant.h"

#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/lattice.h"
#include "quant/ldlq.h"
#include "quant/scalar.h"

namespace caldera::algo {

using linalg::Backend;
using linalg::Matrix;
using linalg::Op;

std::string_view to_string(FactorFormat f) noexcept { return f == FactorFormat::kE8p ? "e8p" : "uniform"; }
std::string_view to_string(FactorScaleMode s) noexcept {
  return s == FactorScaleMode::kPerTensor ? "per-tensor" : "per-row";
}
std::string_view to_string(FactorRounding r) noexcept { return r == FactorRounding::kNearest ? "nearest" : "ldlq"; }

namespace {

template <class T>
void copy_matrix(Backend& backend, const Matrix<T>& src, Matrix<T>& dst, const char* label) {
  if (dst.rows() != src.rows() || dst.cols() != src.cols()) dst = Matrix<T>(backend, src.rows(), src.cols(), label);
  backend.copy(src.cview(), dst.view());
}

template <class T>
void ensure_shape(Backend& backend, Matrix<T>& m, int64_t rows, int64_t cols, const char* label) {
  if (m.rows() != rows || m.cols() != cols) m = Matrix<T>(backend, rows, cols, label);
}

float fp16_round(float v) { return f16_to_f32(f32_to_f16(v)); }

const Tensor& require_shaped(const TensorMap& in, const std::string& name, DType dtype, std::vector<int64_t> shape) {
  const Tensor& t = require_tensor(in, name, "factor");
  if (t.dtype != dtype || t.shape != shape) {
    std::string want, got;
    for (int64_t d : shape) want += std::to_string(d) + ",";
    for (int64_t d : t.shape) got += std::to_string(d) + ",";
    raise<Error>("factor tensor '", name, "': expected ", dtype_name(dtype), " [", want, "], found ",
                 dtype_name(t.dtype), " [", got, "]");
  }
  return t;
}

// E8P factor quantizer: spec §2.4 with per-tensor (paper) or per-row scales.
class LatticeFactorQuantizer final : public FactorQuantizer {
 public:
  LatticeFactorQuantizer(LatticeCodebook codebook, FactorScaleMode mode) : codebook_(codebook), mode_(mode) {}

  void quantize(Backend& be, MatrixView<const float> x, QuantizedFactor& out) const override {
    normalize(be, x, out);
    quant::lattice_quantize(be, out.values.cview(), codebook_, residual_scale(), MatrixView<float>(), out.codes.view());
    dequantize(be, out);
  }

  void quantize_ldlq(Backend& be, MatrixView<const float> x, MatrixView<const float> h, const quant::BlockLdl& ldl,
                     int tune_iters, QuantizedFactor& out) const override {
    normalize(be, x, out);
    auto res = quant::ldlq(be, out.values.cview(), h, ldl,
                           quant::LdlqQuantizer::lattice(codebook_, residual_scale()), tune_iters);
    out.codes = std::move(res.codes);
    dequantize(be, out);
  }

  void dequantize(Backend& be, QuantizedFactor& f) const override {
    const int64_t rows = f.codes.rows(), cols = f.codes.cols() * 8;
    ensure_shape(be, f.values, rows, cols, "factor.values");
    be.quant().lattice_decode(f.codes.cview(), codebook_, residual_scale(), f.values.view());
    if (f.scales.rows() == 1 && mode_ == FactorScaleMode::kPerTensor) {
      const float s = be.download(f.scales)(0, 0);
      be.scale(f.values.view(), s);
    } else {
      CALDERA_CHECK(f.scales.rows() == rows, "factor dequantize: ", rows, " per-row scales expected, got ",
                    f.scales.rows());
      be.mul_rows(f.values.view(), f.scales.cview());
    }
  }

  int code_bits() const noexcept override { return lattice_bits(codebook_); }
  double scale_bits(int64_t rows) const noexcept override {
    return mode_ == FactorScaleMode::kPerRow ? 16.0 * static_cast<double>(rows) : 0.0;
  }
  std::string describe() const override {
    return "e8p" + std::to_string(code_bits()) + "/" + std::string(to_string(mode_));
  }

  void store(Backend& be, const QuantizedFactor& f, const std::string& prefix, TensorMap& out) const override {
    const auto codes = be.download(f.codes);
    const auto packed = quant::pack_lattice_codes(codes.cview(), codebook_);
    out[prefix + "_codes"] = make_tensor(DType::kI64, packed);
    const auto s = be.download(f.scales);
    if (mode_ == FactorScaleMode::kPerTensor) {
      out[prefix + "_scales"] = make_tensor<float>(DType::kF32, {1}, s.data());
    } else {
      std::vector<uint16_t> h(static_cast<size_t>(s.rows()));
      for (int64_t i = 0; i < s.rows(); ++i) h[static_cast<size_t>(i)] = f32_to_f16(s(i, 0));
      out[prefix + "_scales"] = make_vector_tensor(DType::kF16, h);
    }
  }

  QuantizedFactor load(Backend& be, const TensorMap& in, const std::string& prefix, int64_t rows,
                       int64_t cols) const override {
    const int64_t packed_cols = cols * code_bits() / 64;
    const Tensor& c = require_shaped(in, prefix + "_codes", DType::kI64, {rows, packed_cols});
    const auto codes = quant::unpack_lattice_codes(c.matrix<int64_t>(), codebook_, cols);
    QuantizedFactor f;
    f.codes = be.upload(codes.cview(), "factor.codes");
    HostMatrix<float> s(mode_ == FactorScaleMode::kPerTensor ? 1 : rows, 1);
    if (mode_ == FactorScaleMode::kPerTensor) {
      s(0, 0) = require_shaped(in, prefix + "_scales", DType::kF32, {1}).as<float>()[0];
    } else {
      const uint16_t* h = require_shaped(in, prefix + "_scales", DType::kF16, {rows}).as<uint16_t>();
      for (int64_t i = 0; i < rows; ++i) s(i, 0) = f16_to_f32(h[i]);
    }
    f.scales = be.upload(s.cview(), "factor.scales");
    dequantize(be, f);
    return f;
  }

 private:
  float residual_scale() const noexcept { return lattice_default_residual_scale(codebook_); }

  // Scales (per tensor: RMS; per row: fp16-rounded row RMS) into out.scales, and out.values = x
  // normalised to RMS 1 by them; out.codes allocated.
  void normalize(Backend& be, MatrixView<const float> x, QuantizedFactor& out) const {
    CALDERA_CHECK(x.cols % 8 == 0, "factor quantizer: columns must be a multiple of 8, got ", x.rows, "x", x.cols);
    const int64_t rows = x.rows, cols = x.cols;
    ensure_shape(be, out.values, rows, cols, "factor.values");
    ensure_shape(be, out.codes, rows, cols / 8, "factor.codes");
    out.grid_codes = {};
    out.zeros = {};
    HostMatrix<float> scales = mode_ == FactorScaleMode::kPerTensor ? HostMatrix<float>(1, 1) : HostMatrix<float>(rows, 1);
    HostMatrix<float> inv(1, scales.rows());
    if (mode_ == FactorScaleMode::kPerTensor) {
      const double ss = be.sum_squares(x);
      scales(0, 0) = static_cast<float>(std::sqrt(ss / static_cast<double>(std::max<int64_t>(x.size(), 1))));
    } else {
      // Row sums of squares = diag(X Xᵀ).
      auto g = be.make<float>(rows, rows, "factor.gram");
      be.gemm(Op::kNoTrans, Op::kTrans, 1.0f, x, x, 0.0f, g.view());
      auto d = be.make<float>(1, rows, "factor.diag");
      be.diagonal(g.cview(), d.view());
      const auto dh = be.download(d);
      for (int64_t i = 0; i < rows; ++i)
        scales(i, 0) = fp16_round(static_cast<float>(std::sqrt(std::max(dh(0, i), 0.0f) / static_cast<float>(cols))));
    }
    for (int64_t i = 0; i < scales.rows(); ++i) inv(0, i) = scales(i, 0) > 0.0f ? 1.0f / scales(i, 0) : 1.0f;
    ensure_shape(be, out.scales, scales.rows(), 1, "factor.scales");
    be.upload(scales.cview(), out.scales.view());
    be.copy(x, out.values.view());
    if (mode_ == FactorScaleMode::kPerTensor) {
      be.scale(out.values.view(), inv(0, 0));
    } else {
      const auto dinv = be.upload(inv.cview(), "factor.inv");
      be.mul_rows(out.values.view(), MatrixView<const float>(dinv.data(), rows, 1, 1));
    }
  }
  LatticeCodebook codebook_;
  FactorScaleMode mode_;
};

// Uniform min-max factor quantizer: one (scale, zero) per row, fp16-rounded.
class UniformFactorQuantizer final : public FactorQuantizer {
 public:
  explicit UniformFactorQuantizer(int bits) : bits_(bits) {}

  void quantize(Backend& be, MatrixView<const float> x, QuantizedFactor& out) const override {
    const quant::GroupQuantizer gq = quant::GroupQuantizer::spqr(bits_, 0);
    const auto fitted = quant::group_quantize(be, x, gq);
    // Round (scale, zero) to fp16 and re-round onto that grid so the stored values are the used ones.
    auto s = be.download(fitted.scale);
    auto z = be.download(fitted.zero);
    for (int64_t i = 0; i < s.size(); ++i) {
      s.data()[i] = fp16_round(s.data()[i]);
      z.data()[i] = fp16_round(z.data()[i]);
    }
    out.scales = be.upload(s.cview(), "factor.scales");
    out.zeros = be.upload(z.cview(), "factor.zeros");
    out.codes = {};
    ensure_shape(be, out.grid_codes, x.rows, x.cols, "factor.grid_codes");
    be.quant().scalar_quantize(x, grid(out, x.cols), out.grid_codes.view(), MatrixView<float>());
    dequantize(be, out);
  }

  void quantize_ldlq(Backend&, MatrixView<const float>, MatrixView<const float>, const quant::BlockLdl&, int,
                     QuantizedFactor&) const override {
    raise<Error>("factor quantizer: LDLQ rounding is available for the e8p factor format only");
  }

  void dequantize(Backend& be, QuantizedFactor& f) const override {
    ensure_shape(be, f.values, f.grid_codes.rows(), f.grid_codes.cols(), "factor.values");
    be.quant().scalar_dequantize(f.grid_codes.cview(), grid(f, f.grid_codes.cols()), f.values.view());
  }

  int code_bits() const noexcept override { return bits_; }
  double scale_bits(int64_t rows) const noexcept override { return 32.0 * static_cast<double>(rows); }
  std::string describe() const override { return "uniform" + std::to_string(bits_) + "/per-row"; }

  void store(Backend& be, const QuantizedFactor& f, const std::string& prefix, TensorMap& out) const override {
    const auto codes = be.download(f.grid_codes);
    const auto packed = quant::pack_bits(codes.cview(), bits_);
    out[prefix + "_codes"] = make_tensor<int32_t>(DType::kI32, {packed.rows(), packed.cols()},
                                                  reinterpret_cast<const int32_t*>(packed.data()));
    out[prefix + "_scales"] = fp16_vector(be.download(f.scales));
    out[prefix + "_zeros"] = fp16_vector(be.download(f.zeros));
  }

  QuantizedFactor load(Backend& be, const TensorMap& in, const std::string& prefix, int64_t rows,
                       int64_t cols) const override {
    const int64_t words = (cols * bits_ + 31) / 32;
    const Tensor& c = require_shaped(in, prefix + "_codes", DType::kI32, {rows, words});
    const MatrixView<const uint32_t> packed(reinterpret_cast<const uint32_t*>(c.bytes.data()), rows, words);
    const auto codes = quant::unpack_bits(packed, bits_, cols);
    QuantizedFactor f;
    f.grid_codes = be.upload(codes.cview(), "factor.grid_codes");
    f.scales = be.upload(from_fp16(require_shaped(in, prefix + "_scales", DType::kF16, {rows}), rows).cview(), "s");
    f.zeros = be.upload(from_fp16(require_shaped(in, prefix + "_zeros", DType::kF16, {rows}), rows).cview(), "z");
    dequantize(be, f);
    return f;
  }

 private:
  linalg::ScalarGrid grid(const QuantizedFactor& f, int64_t cols) const {
    return {bits_, std::max<int64_t>(cols, 1), 0, f.scales.cview(), f.zeros.cview()};
  }
  static Tensor fp16_vector(const HostMatrix<float>& v) {
    std::vector<uint16_t> h(static_cast<size_t>(v.size()));
    for (int64_t i = 0; i < v.size(); ++i) h[static_cast<size_t>(i)] = f32_to_f16(v.data()[i]);
    return make_vector_tensor(DType::kF16, h);
  }
  static HostMatrix<float> from_fp16(const Tensor& t, int64_t rows) {
    HostMatrix<float> v(rows, 1);
    for (int64_t i = 0; i < rows; ++i) v(i, 0) = f16_to_f32(t.as<uint16_t>()[i]);
    return v;
  }
  int bits_;
};

}  // namespace

void copy_factor(Backend& backend, const QuantizedFactor& src, QuantizedFactor& dst) {
  copy_matrix(backend, src.values, dst.values, "factor.values");
  copy_matrix(backend, src.codes, dst.codes, "factor.codes");
  copy_matrix(backend, src.grid_codes, dst.grid_codes, "factor.grid_codes");
  copy_matrix(backend, src.scales, dst.scales, "factor.scales");
  copy_matrix(backend, src.zeros, dst.zeros, "factor.zeros");
}

std::unique_ptr<FactorQuantizer> make_factor_quantizer(FactorFormat format, int bits, FactorScaleMode scales) {
  if (format == FactorFormat::kE8p) {
    CALDERA_CHECK_AS(ConfigError, bits >= 2 && bits <= 4, "--bits-lr: the e8p factor format takes 2, 3 or 4 bits (or 16 ",
                     "for unquantized factors), got ", bits);
    const LatticeCodebook cb =
        bits == 2 ? LatticeCodebook::kE8P12 : (bits == 3 ? LatticeCodebook::kE8P12RVQ3B : LatticeCodebook::kE8P12RVQ4B);
    return std::make_unique<LatticeFactorQuantizer>(cb, scales);
  }
  CALDERA_CHECK_AS(ConfigError, bits >= 2 && bits <= 8, "--bits-lr: the uniform factor format takes 2..8 bits, got ",
                   bits);
  CALDERA_CHECK_AS(ConfigError, scales == FactorScaleMode::kPerRow,
                   "--factor-scales: the uniform factor format has one (scale, zero) per row; use per-row");
  return std::make_unique<UniformFactorQuantizer>(bits);
}

void round_to_fp16(Backend& backend, MatrixView<float> x) {
  auto h = backend.download(MatrixView<const float>(x));
  for (int64_t i = 0; i < h.size(); ++i) h.data()[i] = fp16_round(h.data()[i]);
  backend.upload(h.cview(), x);
}

}  // namespace caldera::algo
