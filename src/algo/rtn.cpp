#include "algo/rtn.h"

#include <sstream>

#include "algo/bits.h"
#include "algo/hessian.h"
#include "core/dtype.h"
#include "core/error.h"
#include "quant/scalar.h"

namespace caldera::algo {

using linalg::Backend;

std::string_view to_string(RtnGrid g) noexcept { return g == RtnGrid::kMinMax ? "minmax" : "gptq"; }

std::vector<std::string> RtnParams::problems() const {
  std::vector<std::string> out;
  if (bits < 2 || bits > 8) out.push_back(caldera::detail::concat("--bits-q must be 2..8 for --method rtn, got ", bits));
  if (group_size < 0) out.push_back(caldera::detail::concat("--group-size must be >= 0 (0: per channel), got ", group_size));
  return out;
}

void RtnParams::validate() const {
  const auto p = problems();
  if (p.empty()) return;
  std::string msg = "invalid RTN parameters:";
  for (const auto& s : p) msg += "\n  " + s;
  throw ConfigError(msg);
}

std::vector<std::pair<std::string, std::string>> RtnParams::key_values() const {
  return {{"bits-q", std::to_string(bits)},
          {"group-size", std::to_string(group_size)},
          {"rtn-grid", std::string(to_string(grid))}};
}

RtnMethod::RtnMethod(RtnParams params) : params_(params) { params_.validate(); }

double RtnMethod::cost_estimate(int64_t m, int64_t n) const { return static_cast<double>(m) * static_cast<double>(n); }

namespace {

quant::GroupQuantizer group_quantizer(const RtnParams& p) {
  return p.grid == RtnGrid::kMinMax ? quant::GroupQuantizer::spqr(p.bits, p.group_size)
                                    : quant::GroupQuantizer::gptq(p.bits, p.group_size);
}

Tensor to_f16_tensor(const HostMatrix<float>& x) {
  std::vector<uint16_t> h(static_cast<size_t>(x.size()));
  for (int64_t i = 0; i < x.size(); ++i) h[static_cast<size_t>(i)] = f32_to_f16(x.data()[i]);
  return make_tensor<uint16_t>(DType::kF16, {x.rows(), x.cols()}, h.data());
}

HostMatrix<float> from_f16_tensor(const Tensor& t, int64_t rows, int64_t cols, const char* name) {
  CALDERA_CHECK(t.dtype == DType::kF16 && t.shape == std::vector<int64_t>({rows, cols}), "RTN unit: '", name,
                "' must be F16 [", rows, ", ", cols, "]");
  HostMatrix<float> x(rows, cols);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = f16_to_f32(t.as<uint16_t>()[i]);
  return x;
}

int64_t i64_of(const TensorMap& t, const char* name) {
  const Tensor& x = require_tensor(t, name, "RTN unit");
  CALDERA_CHECK(x.dtype == DType::kI64 && x.numel() == 1, "RTN unit: '", name, "' must be an I64 scalar");
  return x.as<int64_t>()[0];
}

}  // namespace

CompressedUnit RtnMethod::compress(const MethodContext& ctx, MatrixView<const float> w_host,
                                   const InputStats& stats) const {
  Backend& be = ctx.backend;
  const int64_t m = w_host.rows, n = w_host.cols;
  const int64_t group = params_.group_size == 0 ? n : params_.group_size;
  auto w = be.upload(w_host, "rtn.w");
  const auto fitted = quant::group_quantize(be, w.cview(), group_quantizer(params_));
  // fp16 statistics, then the codes on that grid.
  auto s = be.download(fitted.scale);
  auto z = be.download(fitted.zero);
  for (int64_t i = 0; i < s.size(); ++i) {
    s.data()[i] = f16_to_f32(f32_to_f16(s.data()[i]));
    z.data()[i] = f16_to_f32(f32_to_f16(z.data()[i]));
  }
  auto ds = be.upload(s.cview(), "rtn.scale");
  auto dz = be.upload(z.cview(), "rtn.zero");
  const linalg::ScalarGrid grid{params_.bits, group, 0, ds.cview(), dz.cview()};
  auto codes = be.make<uint8_t>(m, n, "rtn.codes");
  auto w_hat = be.make<float>(m, n, "rtn.w_hat");
  be.quant().scalar_quantize(w.cview(), grid, codes.view(), MatrixView<float>());
  be.quant().scalar_dequantize(codes.cview(), grid, w_hat.view());

  const HostMatrix<double> h64 = process_hessian(stats, n, kDefaultHessianRidge, ctx.unit.name());
  HostMatrix<float> h32(n, n);
  for (int64_t i = 0; i < h32.size(); ++i) h32.data()[i] = static_cast<float>(h64.data()[i]);
  auto h = be.upload(h32.cview(), "rtn.h");
  ActivationErrorMeter meter(be, w.cview(), h.cview());

  CompressedUnit out;
  const int64_t one = 1, bits = params_.bits;
  out.tensors["format_version"] = make_tensor<int64_t>(DType::kI64, {}, &one);
  out.tensors["bits"] = make_tensor<int64_t>(DType::kI64, {}, &bits);
  out.tensors["group_size"] = make_tensor<int64_t>(DType::kI64, {}, &group);
  const int64_t shape[2] = {m, n};
  out.tensors["shape"] = make_tensor<int64_t>(DType::kI64, {2}, shape);
  const auto packed = quant::pack_bits(be.download(codes).cview(), params_.bits);
  out.tensors["codes"] = make_tensor<int32_t>(DType::kI32, {packed.rows(), packed.cols()},
                                              reinterpret_cast<const int32_t*>(packed.data()));
  out.tensors["scales"] = to_f16_tensor(s);
  out.tensors["zeros"] = to_f16_tensor(z);
  out.metrics.rel_error = meter.rel_error(w_hat.cview());
  out.metrics.error_history = {out.metrics.rel_error};
  out.metrics.bits = scalar_group_bits(m, n, params_.bits, group);
  out.metrics.extra.emplace_back("group_size", static_cast<double>(group));
  return out;
}

HostMatrix<float> RtnMethod::reconstruct(Backend& be, const TensorMap& t) const {
  CALDERA_CHECK(i64_of(t, "format_version") == 1, "RTN unit: format_version ", i64_of(t, "format_version"),
                " is not supported (expected 1)");
  const int bits = static_cast<int>(i64_of(t, "bits"));
  const int64_t group = i64_of(t, "group_size");
  CALDERA_CHECK(bits >= 1 && bits <= 8 && group > 0, "RTN unit: bits ", bits, " / group_size ", group, " invalid");
  const Tensor& c = require_tensor(t, "codes", "RTN unit");
  CALDERA_CHECK(c.dtype == DType::kI32 && c.shape.size() == 2, "RTN unit: 'codes' must be I32 [m, words]");
  const Tensor& sc = require_tensor(t, "scales", "RTN unit");
  const Tensor& shape = require_tensor(t, "shape", "RTN unit");
  CALDERA_CHECK(shape.dtype == DType::kI64 && shape.numel() == 2, "RTN unit: 'shape' must be I64 [2]");
  const int64_t m = shape.as<int64_t>()[0], n = shape.as<int64_t>()[1];
  const int64_t groups = (n + group - 1) / group, words = (n * bits + 31) / 32;
  CALDERA_CHECK(c.shape == std::vector<int64_t>({m, words}), "RTN unit: 'codes' must be I32 [", m, ", ", words, "]");
  const MatrixView<const uint32_t> packed(reinterpret_cast<const uint32_t*>(c.bytes.data()), m, words);
  const auto codes = quant::unpack_bits(packed, bits, n);
  auto dc = be.upload(codes.cview(), "rtn.codes");
  auto ds = be.upload(from_f16_tensor(sc, m, groups, "scales").cview(), "rtn.scale");
  auto dz = be.upload(from_f16_tensor(require_tensor(t, "zeros", "RTN unit"), m, groups, "zeros").cview(), "rtn.zero");
  auto w = be.make<float>(m, n, "rtn.w_hat");
  be.quant().scalar_dequantize(dc.cview(), linalg::ScalarGrid{bits, group, 0, ds.cview(), dz.cview()}, w.view());
  return be.download(w);
}

}  // namespace caldera::algo
