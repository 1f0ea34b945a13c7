// SpQR method (see spqr.h): the GPTQ engine with SpqrColumnQuantizer, the per-matrix τ search,
// and the unit tensors.
#include "algo/spqr.h"

#include <algorithm>
#include <cmath>

#include "algo/gptq_tensors.h"
#include "core/log.h"
#include "core/timer.h"

namespace caldera::algo {
namespace {

constexpr const char* kContext = "spqr unit";
constexpr int64_t kSpqrFormatVersion = 1;
constexpr double kTauStep = 0.05;   // spqr.md §5.4: minimum step of the τ search
constexpr int kMaxTauDoublings = 20;

struct Attempt {
  SpqrEncoding encoding;
  HostMatrix<float> w_hat_perm;
  double tau = 0;
  double threshold = 0;
  double rate() const {
    return static_cast<double>(encoding.outliers()) / static_cast<double>(encoding.rows * encoding.cols);
  }
};

class SpqrMethod final : public Method {
 public:
  explicit SpqrMethod(const SpqrParams& params) : params_(params) { params_.validate(); }

  std::string name() const override { return "spqr"; }
  std::vector<std::pair<std::string, std::string>> parameters() const override { return params_.key_values(); }

  CompressedUnit compress(const MethodContext& context, MatrixView<const float> w,
                          const InputStats& stats) const override {
    SpqrResult r = spqr_quantize_matrix(context.backend, w, stats, params_, context.progress);
    CompressedUnit out;
    out.metrics.rel_error = hessian_relative_error(context.backend, w, r.w_hat.cview(), stats);
    out.metrics.bits = spqr_storage_bits(r.encoding.format, w.rows, w.cols, r.encoding.outliers());
    out.metrics.extra = {{"outliers", static_cast<double>(r.encoding.outliers())},
                         {"outlier_rate", r.outlier_rate()},
                         {"percdamp_used", r.percdamp_used},
                         {"physical_bits", out.metrics.bits + spqr_index_bits(w.rows, w.cols)},
                         {"runs", static_cast<double>(r.runs)},
                         {"seconds_hessian", r.hessian_s},
                         {"seconds_host", r.loop.host_s},
                         {"seconds_backend", r.loop.backend_s}};
    if (std::isfinite(r.tau)) out.metrics.extra.emplace_back("tau", r.tau);  // JSON has no inf: absent = no outliers
    out.tensors = spqr_to_tensors(r.encoding);
    return out;
  }

  HostMatrix<float> reconstruct(linalg::Backend&, const TensorMap& tensors) const override {
    const SpqrEncoding enc = spqr_from_tensors(tensors);
    return unpermute_columns(decode_permuted(enc).cview(), enc.perm);
  }

  double cost_estimate(int64_t m, int64_t n) const override {
    const double dm = static_cast<double>(m), dn = static_cast<double>(n);
    const double loo = std::isfinite(params_.outlier_threshold) ? dm * dn * static_cast<double>(params_.group_size) : 0;
    return dm * dn * dn + dn * dn * dn + loo;
  }

 private:
  SpqrParams params_;
};

}  // namespace

SpqrFormat SpqrParams::format() const {
  SpqrFormat f;
  f.bits = bits;
  f.stat_bits = stat_bits;
  f.group_size = group_size;
  f.stat_group_size = stat_group_size;
  return f;
}

std::vector<std::string> SpqrParams::problems() const {
  using caldera::detail::concat;
  std::vector<std::string> p;
  if (bits < 2 || bits > 16) p.push_back(concat("--bits must be in 2..16, got ", bits));
  if (group_size < 1) p.push_back(concat("--group-size (beta1) must be >= 1, got ", group_size));
  if (!((stat_bits >= 1 && stat_bits <= 8) || stat_bits == 16 || stat_bits == 32))
    p.push_back(concat("--stat-bits must be 1..8 (quantized statistics), 16 (fp16) or 32 (fp32), got ", stat_bits));
  if (stat_group_size < 1) p.push_back(concat("--stat-group-size (beta2) must be >= 1, got ", stat_group_size));
  if (!(outlier_threshold > 0))
    p.push_back(concat("--outlier-threshold (tau) must be > 0 (inf disables outliers), got ", outlier_threshold));
  if (!(outlier_max_rate > 0))
    p.push_back(concat("--outlier-max-rate must be > 0 (>= 1 disables the tau search), got ", outlier_max_rate));
  if (!(std::isfinite(percdamp) && percdamp > 0)) p.push_back(concat("--percdamp must be a finite number > 0, got ", percdamp));
  if (block_size < 1) p.push_back(concat("--block-size must be >= 1, got ", block_size));
  return p;
}

void SpqrParams::validate() const {
  const auto p = problems();
  if (p.empty()) return;
  std::string msg = "invalid configuration for --method spqr:";
  for (const auto& s : p) msg += "\n  " + s;
  throw ConfigError(msg);
}

std::vector<std::pair<std::string, std::string>> SpqrParams::key_values() const {
  return {{"bits", std::to_string(bits)},
          {"group_size", std::to_string(group_size)},
          {"stat_bits", std::to_string(stat_bits)},
          {"stat_group_size", std::to_string(stat_group_size)},
          {"outlier_threshold", caldera::detail::concat(outlier_threshold)},
          {"outlier_max_rate", caldera::detail::concat(outlier_max_rate)},
          {"percdamp", caldera::detail::concat(percdamp)},
          {"act_order", order == ColumnOrder::kActOrder ? "on" : "off"},
          {"simplified_outliers", outlier_selection == OutlierSelection::kSimplified ? "on" : "off"},
          {"block_size", std::to_string(block_size)}};
}

SpqrResult spqr_quantize_matrix(linalg::Backend& backend, MatrixView<const float> w, const InputStats& stats,
                                const SpqrParams& params, const std::function<void(double)>& progress) {
  params.validate();
  CALDERA_CHECK(w.rows > 0 && w.cols > 0 && stats.sum_xxt.rows() == w.cols, "SpQR: W is ", w.rows, "x", w.cols,
                " but the input statistics are for ", stats.sum_xxt.rows(), " columns");
  GptqHessianOptions hopt;
  hopt.percdamp = params.percdamp;
  hopt.order = params.order;
  Stopwatch sw;
  const GptqHessian hessian = prepare_gptq_hessian(backend, stats, hopt);
  const double hessian_s = sw.elapsed_s();
  GptqTimings timings;
  const HostMatrix<float> w_perm = permute_columns(w, hessian.perm, hessian.dead);
  // §5.1: σ² on the permuted, dead-zeroed, not yet quantized W (pitfall 9).
  const double sigma2 = outlier_scale(w_perm.cview(), hessian.d);
  const SpqrFormat format = params.format();
  GptqLoopOptions lopt;
  lopt.block_size = params.block_size;
  lopt.progress = progress;
  lopt.timings = &timings;

  int runs = 0;
  auto run = [&](double tau) {
    Attempt a;
    a.tau = tau;
    a.threshold = std::isfinite(tau) ? tau * sigma2 : INFINITY;
    SpqrColumnQuantizer quantizer(format, w.rows, w.cols, a.threshold, params.outlier_selection);
    a.w_hat_perm = gptq_quantize(backend, w_perm.cview(), hessian, quantizer, lopt);
    a.encoding = quantizer.release_encoding(hessian.perm);
    ++runs;
    return a;
  };

  Attempt best = run(params.outlier_threshold);
  if (std::isfinite(params.outlier_threshold) && params.outlier_max_rate < 1 && best.rate() > params.outlier_max_rate) {
    // §5.4: the smallest τ on the search path whose outlier rate is within the budget.
    const double first_rate = best.rate();
    double lo = params.outlier_threshold, hi = std::max(1.0, 2 * params.outlier_threshold);
    bool found = false;
    for (int k = 0; k < kMaxTauDoublings && !found; ++k) {
      Attempt a = run(hi);
      if (a.rate() <= params.outlier_max_rate) {
        best = std::move(a);
        found = true;
      } else {
        lo = hi;
        hi *= 2;
      }
    }
    if (!found) {
      best = run(INFINITY);
    } else {
      while (hi - lo > kTauStep) {
        const double mid = 0.5 * (lo + hi);
        Attempt a = run(mid);
        if (a.rate() <= params.outlier_max_rate) {
          best = std::move(a);
          hi = mid;
        } else {
          lo = mid;
        }
      }
    }
    log_debug("SpQR ", w.rows, "x", w.cols, ": outlier rate ", first_rate, " at tau ", params.outlier_threshold,
              " above the budget ", params.outlier_max_rate, "; tau ", best.tau, " gives ", best.rate(), " (", runs,
              " passes)");
  }

  SpqrResult out;
  out.w_hat = unpermute_columns(best.w_hat_perm.cview(), hessian.perm);
  out.encoding = std::move(best.encoding);
  out.tau = best.tau;
  out.threshold = best.threshold;
  out.percdamp_used = hessian.percdamp_used;
  out.runs = runs;
  out.hessian_s = hessian_s;
  out.loop = timings;
  return out;
}

TensorMap spqr_to_tensors(const SpqrEncoding& enc) {
  enc.validate();
  const SpqrFormat& f = enc.format;
  const int64_t m = enc.rows, n = enc.cols, groups = f.column_groups(n), blocks = f.row_blocks(m);
  TensorMap t;
  if (f.bits <= 8) {
    const std::vector<uint8_t> codes(enc.codes.begin(), enc.codes.end());
    t["codes"] = detail::packed_codes_tensor(codes.data(), m, n, f.bits);
  } else {
    t["codes"] = make_tensor<uint16_t>(DType::kI16, {m, n}, enc.codes.data());
  }
  if (f.bilevel()) {
    t["scale_codes"] = detail::packed_codes_tensor(enc.scale_codes.data(), m, groups, f.stat_bits);
    t["zero_codes"] = detail::packed_codes_tensor(enc.zero_codes.data(), m, groups, f.stat_bits);
    t["scale_stats"] = make_tensor<uint16_t>(DType::kF16, {blocks, groups, 2}, enc.scale_stats.data());
    t["zero_stats"] = make_tensor<uint16_t>(DType::kF16, {blocks, groups, 2}, enc.zero_stats.data());
  } else if (f.stat_bits == 16) {
    std::vector<uint16_t> s(enc.scales.size()), z(enc.zeros.size());
    for (size_t k = 0; k < s.size(); ++k) {
      s[k] = f32_to_f16(enc.scales[k]);
      z[k] = f32_to_f16(enc.zeros[k]);
    }
    t["scales"] = make_tensor<uint16_t>(DType::kF16, {m, groups}, s.data());
    t["zeros"] = make_tensor<uint16_t>(DType::kF16, {m, groups}, z.data());
  } else {
    t["scales"] = make_tensor<float>(DType::kF32, {m, groups}, enc.scales.data());
    t["zeros"] = make_tensor<float>(DType::kF32, {m, groups}, enc.zeros.data());
  }
  const int64_t nnz = enc.outliers();
  t["outlier_row_ptr"] = make_tensor<int32_t>(DType::kI32, {m + 1}, enc.row_ptr.data());
  if (n <= 65536) {
    const std::vector<uint16_t> cols(enc.outlier_cols.begin(), enc.outlier_cols.end());
    t["outlier_cols"] = make_tensor<uint16_t>(DType::kI16, {nnz}, cols.data());
  } else {
    t["outlier_cols"] = make_tensor<int32_t>(DType::kI32, {nnz}, enc.outlier_cols.data());
  }
  t["outlier_values"] = make_tensor<uint16_t>(DType::kF16, {nnz}, enc.outlier_residuals.data());
  t["perm"] = make_tensor<int32_t>(DType::kI32, {n}, enc.perm.data());
  const int64_t shape[2] = {m, n};
  t["format_version"] = detail::int_scalar_tensor(kSpqrFormatVersion);
  t["shape"] = make_tensor<int64_t>(DType::kI64, {2}, shape);
  t["bits"] = detail::int_scalar_tensor(f.bits);
  t["stat_bits"] = detail::int_scalar_tensor(f.stat_bits);
  t["group_size"] = detail::int_scalar_tensor(f.group_size);
  t["stat_group_size"] = detail::int_scalar_tensor(f.stat_group_size);
  return t;
}

SpqrEncoding spqr_from_tensors(const TensorMap& tensors) {
  using detail::expect_int_scalar;
  using detail::expect_tensor;
  using detail::tensor_values;
  SpqrEncoding enc;
  SpqrFormat& f = enc.format;
  f.bits = static_cast<int>(expect_int_scalar(tensors, "bits", 1, 16, kContext));
  f.stat_bits = static_cast<int>(expect_int_scalar(tensors, "stat_bits", 1, 32, kContext));
  f.group_size = expect_int_scalar(tensors, "group_size", 1, int64_t{1} << 40, kContext);
  f.stat_group_size = expect_int_scalar(tensors, "stat_group_size", 1, int64_t{1} << 40, kContext);
  if (!(f.bilevel() || f.stat_bits == 16 || f.stat_bits == 32))
    raise<IoError>(kContext, ": scalar 'stat_bits' must be 1..8, 16 or 32, found ", f.stat_bits);
  expect_int_scalar(tensors, "format_version", kSpqrFormatVersion, kSpqrFormatVersion, kContext);
  const auto [m, n] = detail::expect_shape(tensors, kContext);
  enc.rows = m;
  enc.cols = n;
  const int64_t groups = f.column_groups(n), blocks = f.row_blocks(m);
  if (f.bits <= 8) {
    const auto c8 = detail::expect_packed_codes(tensors, "codes", m, n, f.bits, kContext);
    enc.codes.assign(c8.begin(), c8.end());
  } else {
    enc.codes = tensor_values<uint16_t>(expect_tensor(tensors, "codes", DType::kI16, {m, n}, kContext));
  }
  if (f.bilevel()) {
    enc.scale_codes = detail::expect_packed_codes(tensors, "scale_codes", m, groups, f.stat_bits, kContext);
    enc.zero_codes = detail::expect_packed_codes(tensors, "zero_codes", m, groups, f.stat_bits, kContext);
    enc.scale_stats = tensor_values<uint16_t>(expect_tensor(tensors, "scale_stats", DType::kF16, {blocks, groups, 2}, kContext));
    enc.zero_stats = tensor_values<uint16_t>(expect_tensor(tensors, "zero_stats", DType::kF16, {blocks, groups, 2}, kContext));
  } else if (f.stat_bits == 16) {
    for (const char* name : {"scales", "zeros"}) {
      const auto h = tensor_values<uint16_t>(expect_tensor(tensors, name, DType::kF16, {m, groups}, kContext));
      std::vector<float>& dst = std::string(name) == "scales" ? enc.scales : enc.zeros;
      dst.resize(h.size());
      for (size_t k = 0; k < h.size(); ++k) dst[k] = f16_to_f32(h[k]);
    }
  } else {
    enc.scales = tensor_values<float>(expect_tensor(tensors, "scales", DType::kF32, {m, groups}, kContext));
    enc.zeros = tensor_values<float>(expect_tensor(tensors, "zeros", DType::kF32, {m, groups}, kContext));
  }
  const Tensor& values = require_tensor(tensors, "outlier_values", kContext);
  const int64_t nnz = values.shape.size() == 1 ? values.shape[0] : -1;
  enc.outlier_residuals = tensor_values<uint16_t>(expect_tensor(tensors, "outlier_values", DType::kF16, {nnz}, kContext));
  enc.row_ptr = tensor_values<int32_t>(expect_tensor(tensors, "outlier_row_ptr", DType::kI32, {m + 1}, kContext));
  if (n <= 65536) {
    const auto c = tensor_values<uint16_t>(expect_tensor(tensors, "outlier_cols", DType::kI16, {nnz}, kContext));
    enc.outlier_cols.assign(c.begin(), c.end());
  } else {
    enc.outlier_cols = tensor_values<int32_t>(expect_tensor(tensors, "outlier_cols", DType::kI32, {nnz}, kContext));
  }
  enc.perm = tensor_values<int32_t>(expect_tensor(tensors, "perm", DType::kI32, {n}, kContext));
  enc.validate();
  return enc;
}

std::unique_ptr<Method> make_spqr_method(const SpqrParams& params) { return std::make_unique<SpqrMethod>(params); }

}  // namespace caldera::algo
