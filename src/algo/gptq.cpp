// Plain GPTQ baseline (see gptq.h): GPTQ's min-max grid on top of the engine in gptq_core.h.
#include "algo/gptq.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "algo/gptq_tensors.h"
#include "core/dtype.h"
#include "core/e8p_tables.h"
#include "core/timer.h"

namespace caldera::algo {
namespace {

constexpr const char* kContext = "gptq unit";
constexpr int64_t kGptqFormatVersion = 1;

/// GPTQ's rule for "quantize column j": the statistics of a group are fit once on its current
/// values; codes are recorded in the encoding.
class GptqColumnQuantizer final : public ColumnQuantizer {
 public:
  GptqColumnQuantizer(int bits, int64_t group_size, int64_t rows, int64_t cols)
      : bits_(bits), scale_(static_cast<size_t>(rows)), zero_(static_cast<size_t>(rows)) {
    enc_.bits = bits;
    enc_.group_size = group_size;
    enc_.rows = rows;
    enc_.cols = cols;
    enc_.codes.assign(static_cast<size_t>(rows * cols), 0);
    enc_.scales.assign(static_cast<size_t>(rows * enc_.groups()), 0);
    enc_.zeros.assign(enc_.scales.size(), 0);
  }

  int64_t group_size() const override { return enc_.group_size; }

  void begin_group(int64_t j0, MatrixView<const float> group, std::span<const float>) override {
    const int64_t gi = j0 / enc_.group_size;
    const int64_t groups = enc_.groups();
    for (int64_t i = 0; i < group.rows; ++i) {
      float lo = group(i, 0), hi = group(i, 0);
      for (int64_t k = 0; k < group.cols; ++k) {
        lo = std::min(lo, group(i, k));
        hi = std::max(hi, group(i, k));
      }
      // GPTQ's grid: range widened to contain 0, integer zero point; the scale is then rounded to
      // the fp16 it is stored as, so the codes are chosen (and errors fed back) with that scale.
      float scale, zero;
      scalar::grid_from_range(lo, hi, bits_, ScalarSymmetry::kAsymmetric, ScalarRange::kIncludeZero,
                              ZeroPoint::kRounded, &scale, &zero);
      const uint16_t s16 = f32_to_f16(scale);
      scale_[static_cast<size_t>(i)] = f16_to_f32(s16);
      zero_[static_cast<size_t>(i)] = zero;
      enc_.scales[static_cast<size_t>(i * groups + gi)] = s16;
      enc_.zeros[static_cast<size_t>(i * groups + gi)] = static_cast<uint8_t>(zero);
    }
  }

  float quantize(int64_t row, int64_t col, float w, float) override {
    const float s = scale_[static_cast<size_t>(row)], z = zero_[static_cast<size_t>(row)];
    const uint32_t code = scalar::quantize(w, s, z, bits_);
    enc_.codes[static_cast<size_t>(row * enc_.cols + col)] = static_cast<uint8_t>(code);
    return scalar::dequantize(code, s, z);
  }

  GptqEncoding release(std::span<const int32_t> perm) {
    enc_.perm.assign(perm.begin(), perm.end());
    return std::move(enc_);
  }

 private:
  int bits_;
  GptqEncoding enc_;
  std::vector<float> scale_;
  std::vector<float> zero_;
};

class GptqMethod final : public Method {
 public:
  explicit GptqMethod(const GptqParams& params) : params_(params) { params_.validate(); }

  std::string name() const override { return "gptq"; }
  std::vector<std::pair<std::string, std::string>> parameters() const override { return params_.key_values(); }

  CompressedUnit compress(const MethodContext& context, MatrixView<const float> w,
                          const InputStats& stats) const override {
    GptqResult r = gptq_quantize_matrix(context.backend, w, stats, params_, context.progress);
    CompressedUnit out;
    out.metrics.rel_error = hessian_relative_error(context.backend, w, r.w_hat.cview(), stats);
    out.metrics.bits = gptq_storage_bits(params_.bits, w.rows, w.cols, r.encoding.group_size);
    out.metrics.extra = {{"percdamp_used", r.percdamp_used},
                         {"physical_bits", out.metrics.bits + 32.0 * static_cast<double>(w.cols)},
                         {"seconds_hessian", r.hessian_s},
                         {"seconds_host", r.loop.host_s},
                         {"seconds_backend", r.loop.backend_s}};
    out.tensors = gptq_to_tensors(r.encoding);
    return out;
  }

  HostMatrix<float> reconstruct(linalg::Backend&, const TensorMap& tensors) const override {
    const GptqEncoding enc = gptq_from_tensors(tensors);
    return unpermute_columns(decode_permuted(enc).cview(), enc.perm);
  }

  double cost_estimate(int64_t m, int64_t n) const override {
    const double dm = static_cast<double>(m), dn = static_cast<double>(n);
    return dm * dn * dn + dn * dn * dn;  // lazy updates m·n² + three n³ factorisations
  }

 private:
  GptqParams params_;
};

}  // namespace

std::vector<std::string> GptqParams::problems() const {
  using caldera::detail::concat;
  std::vector<std::string> p;
  if (bits < 2 || bits > 8) p.push_back(concat("--bits must be in 2..8, got ", bits));
  if (group_size < 0) p.push_back(concat("--group-size must be >= 0 (0 = per-channel), got ", group_size));
  if (!(std::isfinite(percdamp) && percdamp > 0)) p.push_back(concat("--percdamp must be a finite number > 0, got ", percdamp));
  if (block_size < 1) p.push_back(concat("--block-size must be >= 1, got ", block_size));
  return p;
}

void GptqParams::validate() const {
  const auto p = problems();
  if (p.empty()) return;
  std::string msg = "invalid configuration for --method gptq:";
  for (const auto& s : p) msg += "\n  " + s;
  throw ConfigError(msg);
}

std::vector<std::pair<std::string, std::string>> GptqParams::key_values() const {
  return {{"bits", std::to_string(bits)},
          {"group_size", std::to_string(group_size)},
          {"percdamp", caldera::detail::concat(percdamp)},
          {"act_order", order == ColumnOrder::kActOrder ? "on" : "off"},
          {"block_size", std::to_string(block_size)}};
}

void GptqEncoding::validate() const {
  if (bits < 2 || bits > 8 || rows < 1 || cols < 1 || group_size < 1)
    raise<IoError>(kContext, ": invalid shape ", rows, "x", cols, " with bits ", bits, ", group size ", group_size);
  const size_t mg = static_cast<size_t>(rows * groups());
  if (codes.size() != static_cast<size_t>(rows * cols) || scales.size() != mg || zeros.size() != mg)
    raise<IoError>(kContext, ": ", codes.size(), " codes, ", scales.size(), " scales, ", zeros.size(),
                   " zeros for ", rows, "x", cols, " in groups of ", group_size);
  const int maxq = (1 << bits) - 1;
  for (size_t k = 0; k < codes.size(); ++k)
    if (codes[k] > maxq) raise<IoError>(kContext, ": code ", int{codes[k]}, " above ", maxq, " at entry ", k);
  for (size_t k = 0; k < mg; ++k)
    if (zeros[k] > maxq) raise<IoError>(kContext, ": zero point ", int{zeros[k]}, " above ", maxq, " at entry ", k);
  check_permutation(perm, cols, kContext);
}

double gptq_storage_bits(int bits, int64_t m, int64_t n, int64_t group_size) {
  const int64_t groups = (n + group_size - 1) / group_size;
  return static_cast<double>(bits) * static_cast<double>(m) * static_cast<double>(n) +
         (16.0 + bits) * static_cast<double>(m) * static_cast<double>(groups);
}

GptqResult gptq_quantize_matrix(linalg::Backend& backend, MatrixView<const float> w, const InputStats& stats,
                                const GptqParams& params, const std::function<void(double)>& progress) {
  params.validate();
  CALDERA_CHECK(w.rows > 0 && w.cols > 0 && stats.sum_xxt.rows() == w.cols, "GPTQ: W is ", w.rows, "x", w.cols,
                " but the input statistics are for ", stats.sum_xxt.rows(), " columns");
  GptqHessianOptions hopt;
  hopt.percdamp = params.percdamp;
  hopt.order = params.order;
  GptqResult out;
  Stopwatch sw;
  const GptqHessian hessian = prepare_gptq_hessian(backend, stats, hopt);
  out.hessian_s = sw.elapsed_s();
  const HostMatrix<float> w_perm = permute_columns(w, hessian.perm, hessian.dead);
  const int64_t group = params.group_size == 0 ? w.cols : std::min(params.group_size, w.cols);
  GptqColumnQuantizer quantizer(params.bits, group, w.rows, w.cols);
  GptqLoopOptions lopt;
  lopt.block_size = params.block_size;
  lopt.progress = progress;
  lopt.timings = &out.loop;
  const HostMatrix<float> w_hat = gptq_quantize(backend, w_perm.cview(), hessian, quantizer, lopt);
  out.encoding = quantizer.release(hessian.perm);
  out.w_hat = unpermute_columns(w_hat.cview(), hessian.perm);
  out.percdamp_used = hessian.percdamp_used;
  return out;
}

HostMatrix<float> decode_permuted(const GptqEncoding& enc) {
  enc.validate();
  const int64_t groups = enc.groups();
  HostMatrix<float> out(enc.rows, enc.cols);
  for (int64_t i = 0; i < enc.rows; ++i)
    for (int64_t j = 0; j < enc.cols; ++j) {
      const size_t sg = static_cast<size_t>(i * groups + j / enc.group_size);
      out(i, j) = scalar::dequantize(enc.codes[static_cast<size_t>(i * enc.cols + j)], f16_to_f32(enc.scales[sg]),
                                     static_cast<float>(enc.zeros[sg]));
    }
  return out;
}

TensorMap gptq_to_tensors(const GptqEncoding& enc) {
  TensorMap t;
  const int64_t groups = enc.groups();
  t["codes"] = detail::packed_codes_tensor(enc.codes.data(), enc.rows, enc.cols, enc.bits);
  t["scales"] = make_tensor<uint16_t>(DType::kF16, {enc.rows, groups}, enc.scales.data());
  t["zeros"] = detail::packed_codes_tensor(enc.zeros.data(), enc.rows, groups, enc.bits);
  t["perm"] = make_tensor<int32_t>(DType::kI32, {enc.cols}, enc.perm.data());
  const int64_t shape[2] = {enc.rows, enc.cols};
  t["format_version"] = detail::int_scalar_tensor(kGptqFormatVersion);
  t["shape"] = make_tensor<int64_t>(DType::kI64, {2}, shape);
  t["bits"] = detail::int_scalar_tensor(enc.bits);
  t["group_size"] = detail::int_scalar_tensor(enc.group_size);
  return t;
}

GptqEncoding gptq_from_tensors(const TensorMap& tensors) {
  using detail::expect_tensor;
  GptqEncoding enc;
  detail::expect_int_scalar(tensors, "format_version", kGptqFormatVersion, kGptqFormatVersion, kContext);
  std::tie(enc.rows, enc.cols) = detail::expect_shape(tensors, kContext);
  enc.bits = static_cast<int>(detail::expect_int_scalar(tensors, "bits", 2, 8, kContext));
  enc.group_size = detail::expect_int_scalar(tensors, "group_size", 1, std::max<int64_t>(enc.cols, 1), kContext);
  const int64_t groups = enc.groups();
  enc.codes = detail::expect_packed_codes(tensors, "codes", enc.rows, enc.cols, enc.bits, kContext);
  enc.scales = detail::tensor_values<uint16_t>(expect_tensor(tensors, "scales", DType::kF16, {enc.rows, groups}, kContext));
  enc.zeros = detail::expect_packed_codes(tensors, "zeros", enc.rows, groups, enc.bits, kContext);
  enc.perm = detail::tensor_values<int32_t>(expect_tensor(tensors, "perm", DType::kI32, {enc.cols}, kContext));
  enc.validate();
  return enc;
}

std::unique_ptr<Method> make_gptq_method(const GptqParams& params) { return std::make_unique<GptqMethod>(params); }

}  // namespace caldera::algo
