#include "algo/asvd.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"

namespace caldera::algo {
namespace {

std::string lowered(std::string_view text) {
  std::string s(text);
  for (char& c : s) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string format_double(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::string format_list(const std::vector<double>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + format_double(v[i]);
  return s;
}

/// Ridge of the processed Hessian (caldera spec §6.5), used for the comparable error metric.
constexpr double kMetricRidge = 0.01;

/// sqrt(tr(ΔHΔᵀ)/tr(WHWᵀ)), Δ = Ŵ − W, with H = G trace-normalised + ridge·I, in fp64 on the
/// backend: with ridge = kMetricRidge spec caldera §1.3 REL_ERR with the processed Hessian of §6.5;
/// with 0 the exact relative output error on the inputs of G. Falls back to the Frobenius relative
/// error when no Gram matrix was given (reported by the caller).
double activation_rel_error(linalg::Backend& backend, MatrixView<const float> w, MatrixView<const float> w_hat,
                            const InputStats& stats, double ridge = kMetricRidge) {
  const int64_t m = w.rows, n = w.cols;
  auto w64 = backend.make<double>(m, n, "asvd.metric.w");
  auto d64 = backend.make<double>(m, n, "asvd.metric.delta");
  {
    auto w32 = backend.upload(w, "asvd.metric.w32");
    backend.convert(w32.cview(), w64.view());
    auto h32 = backend.upload(w_hat, "asvd.metric.what32");
    backend.convert(h32.cview(), d64.view());
  }
  backend.axpby(-1.0, w64.cview(), 1.0, d64.view());  // Δ = Ŵ − W
  if (stats.sum_xxt.rows() != n) {
    const double den = backend.sum_squares(w64.cview());
    return den > 0 ? std::sqrt(backend.sum_squares(d64.cview()) / den) : 0.0;
  }
  double trace = 0;
  for (int64_t i = 0; i < n; ++i) trace += stats.sum_xxt(i, i);
  auto h = backend.upload(stats.sum_xxt.view(), "asvd.metric.h");
  if (trace > 0) backend.scale(h.view(), static_cast<double>(n) / trace);
  if (ridge > 0) backend.add_diagonal(h.view(), ridge);
  auto eh = backend.make<double>(m, n, "asvd.metric.eh");
  backend.gemm(linalg::Op::kNoTrans, linalg::Op::kNoTrans, 1.0, d64.cview(), h.cview(), 0.0, eh.view());
  const double num = backend.dot(eh.cview(), d64.cview());
  backend.gemm(linalg::Op::kNoTrans, linalg::Op::kNoTrans, 1.0, w64.cview(), h.cview(), 0.0, eh.view());
  const double den = backend.dot(eh.cview(), w64.cview());
  if (den <= 0) return num > 0 ? INFINITY : 0.0;
  return std::sqrt(std::max(num, 0.0) / den);
}

double parse_number(std::string_view key, std::string_view v) {
  const std::string s(v);
  size_t used = 0;
  double d = 0;
  try {
    d = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  CALDERA_CHECK_AS(ConfigError, used == s.size() && !s.empty(), "--", key, ": a number expected, found '", v, "'");
  return d;
}

std::vector<double> parse_number_list(std::string_view key, std::string_view v) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= v.size()) {
    const size_t comma = v.find(',', start);
    const std::string_view item = v.substr(start, comma == std::string_view::npos ? v.size() - start : comma - start);
    out.push_back(parse_number(key, item));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

HostMatrix<float> bf16_matrix(const Tensor& t, const std::string& name) {
  CALDERA_CHECK(t.dtype == DType::kBF16 && t.shape.size() == 2, "low-rank tensor '", name,
                "': bf16 2-D expected, found ", dtype_name(t.dtype), " with ", t.shape.size(), " dimensions");
  HostMatrix<float> out(t.shape[0], t.shape[1]);
  const uint16_t* p = t.as<uint16_t>();
  for (int64_t i = 0; i < out.size(); ++i) out.data()[i] = bf16_to_f32(p[i]);
  return out;
}

}  // namespace

std::string_view to_string(LowRankKind kind) noexcept {
  switch (kind) {
    case LowRankKind::kAsvd: return "asvd";
    case LowRankKind::kSvdLlm: return "svdllm";
    case LowRankKind::kSvd: return "svd";
  }
  return "?";
}

LowRankKind parse_low_rank_kind(std::string_view text) {
  const std::string s = lowered(text);
  if (s == "asvd") return LowRankKind::kAsvd;
  if (s == "svdllm" || s == "svd-llm") return LowRankKind::kSvdLlm;
  if (s == "svd") return LowRankKind::kSvd;
  raise<ConfigError>("--method: expected asvd, svdllm or svd, found '", text, "'");
}

std::string_view to_string(LowRankUpdate update) noexcept {
  return update == LowRankUpdate::kLocal ? "local" : "none";
}

LowRankUpdate parse_low_rank_update(std::string_view text) {
  const std::string s = lowered(text);
  if (s == "none") return LowRankUpdate::kNone;
  if (s == "local") return LowRankUpdate::kLocal;
  raise<ConfigError>("--update: expected none or local, found '", text, "'");
}

std::string_view to_string(RankSearch search) noexcept {
  return search == RankSearch::kUniform ? "uniform" : "sensitivity";
}

RankSearch parse_rank_search(std::string_view text) {
  const std::string s = lowered(text);
  if (s == "sensitivity") return RankSearch::kSensitivity;
  if (s == "uniform") return RankSearch::kUniform;
  raise<ConfigError>("--rank-search: expected sensitivity or uniform, found '", text, "'");
}

std::vector<double> AsvdParams::candidates(RankSearchMode mode) const {
  const auto& given = mode == RankSearchMode::kWeights ? weight_candidates : kv_candidates;
  return given.empty() ? default_candidates(mode) : given;
}

AsvdParams AsvdParams::sensitivity_params() const {
  AsvdParams p = *this;
  if (p.method == LowRankKind::kSvd) p.method = LowRankKind::kAsvd;
  p.update = LowRankUpdate::kNone;  // the sensitivities replace one matrix of the original model
  return p;
}

void AsvdParams::validate() const {
  std::vector<std::string> problems;
  auto bad = [&](auto&&... parts) { problems.push_back(detail::concat(parts...)); };
  if (!(std::isfinite(param_ratio) && param_ratio > 0.0 && param_ratio <= 1.0))
    bad("--param-ratio: a ratio in (0, 1] expected, found ", param_ratio);
  if (!(std::isfinite(kv_ratio) && kv_ratio > 0.0 && kv_ratio <= 1.0))
    bad("--kv-ratio: a ratio in (0, 1] expected, found ", kv_ratio);
  if (param_ratio >= 1.0 && kv_ratio >= 1.0)
    bad("--param-ratio / --kv-ratio: both are 1, nothing would be compressed");
  if (!(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 4.0)) bad("--alpha: a value in [0, 4] expected, found ", alpha);
  if (update == LowRankUpdate::kLocal && method != LowRankKind::kSvdLlm)
    bad("--update local: SVD-LLM's parameter update (spec §9.1) needs --method svdllm, found ", to_string(method));
  if (sensitivity_sequences < 1) bad("--sensitivity-seqs: at least 1 sequence expected, found ", sensitivity_sequences);
  if (!(scaling_floor > 0.0 && scaling_floor < 1.0)) bad("--scaling-floor: a value in (0, 1) expected, found ", scaling_floor);
  if (!(whitening_damping > 0.0 && whitening_damping < 1.0))
    bad("--whitening-damping: a value in (0, 1) expected, found ", whitening_damping);
  auto check_list = [&](const std::vector<double>& c, const char* option, double upper) {
    for (size_t i = 0; i < c.size(); ++i) {
      if (!(std::isfinite(c[i]) && c[i] > 0.0 && c[i] < upper))
        bad(option, ": candidate ratios in (0, ", upper, ") expected, found ", c[i]);
      else if (i > 0 && c[i] <= c[i - 1])
        bad(option, ": candidate ratios must be strictly ascending, found ", c[i - 1], " then ", c[i]);
    }
  };
  check_list(weight_candidates, "--sensitivity-candidates", 1.0);
  check_list(kv_candidates, "--kv-candidates", 2.0);
  if (!problems.empty()) {
    std::string msg = "invalid low-rank (asvd/svdllm/svd) parameters:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw ConfigError(msg);
  }
}

std::vector<std::pair<std::string, std::string>> AsvdParams::to_pairs() const {
  std::vector<std::pair<std::string, std::string>> p;
  p.emplace_back("method", std::string(to_string(method)));
  p.emplace_back("param_ratio", format_double(param_ratio));
  p.emplace_back("kv_ratio", format_double(kv_ratio));
  // ASVD's scaling settings matter when ASVD factorizes, or when it measures the sensitivities that
  // set the ranks (svd under STRS, sensitivity_params).
  if (method == LowRankKind::kAsvd ||
      (rank_search == RankSearch::kSensitivity && sensitivity_params().method == LowRankKind::kAsvd)) {
    p.emplace_back("alpha", format_double(alpha));
    p.emplace_back("scaling", std::string(to_string(scaling)));
    p.emplace_back("scaling_floor", format_double(scaling_floor));
  }
  if (method == LowRankKind::kSvdLlm) p.emplace_back("whitening_damping", format_double(whitening_damping));
  if (update == LowRankUpdate::kLocal) p.emplace_back("update", std::string(to_string(update)));
  p.emplace_back("rank_search", std::string(to_string(rank_search)));
  if (rank_search == RankSearch::kSensitivity) {
    p.emplace_back("sensitivity_sequences", std::to_string(sensitivity_sequences));
    if (weight_search()) p.emplace_back("weight_candidates", format_list(candidates(RankSearchMode::kWeights)));
    if (kv_search()) p.emplace_back("kv_candidates", format_list(candidates(RankSearchMode::kKvCache)));
  }
  p.emplace_back("sigma_fuse", std::string(to_string(sigma_fuse)));
  p.emplace_back("svd_precision", std::string(to_string(svd_precision)));
  p.emplace_back("factor_dtype", "bf16");
  return p;
}

LowRankMethod::LowRankMethod(AsvdParams params, std::optional<RankAllocation> allocation)
    : params_(std::move(params)), allocation_(std::move(allocation)) {
  params_.validate();
}

std::string LowRankMethod::name() const { return std::string(to_string(params_.method)); }

std::vector<std::pair<std::string, std::string>> LowRankMethod::parameters() const {
  auto p = params_.to_pairs();
  if (allocation_) {
    // FNV-1a over every (matrix, rank): finished units are never reused under another allocation.
    uint64_t h = 1469598103934665603ull;
    for (const auto& m : allocation_->matrices) {
      const std::string item = m.shape.name() + "=" + std::to_string(m.rank) + ";";
      for (unsigned char c : item) h = (h ^ c) * 1099511628211ull;
    }
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
    p.emplace_back("allocation_digest", hex);
  }
  return p;
}

double LowRankMethod::cost_estimate(int64_t m, int64_t n) const {
  const double mm = static_cast<double>(m), nn = static_cast<double>(n);
  double cost = mm * nn * std::min(mm, nn);             // thin SVD of W·S
  if (params_.method == LowRankKind::kSvdLlm) cost += nn * nn * (nn / 3.0 + mm);  // Cholesky + W·L
  return cost;
}

InputTransform LowRankMethod::input_transform(linalg::Backend& backend, const InputStats& stats, int64_t n,
                                              const std::string& context) const {
  switch (params_.method) {
    case LowRankKind::kAsvd: {
      DiagonalScalingOptions o;
      o.scaling = params_.scaling;
      o.alpha = params_.alpha;
      o.relative_floor = params_.scaling_floor;
      return diagonal_scaling(stats, n, o, context);
    }
    case LowRankKind::kSvdLlm: {
      WhiteningOptions o;
      o.first_damping = params_.whitening_damping;
      return cholesky_whitening(backend, stats, n, o, context);
    }
    case LowRankKind::kSvd: break;
  }
  return InputTransform{};
}

int64_t LowRankMethod::rank_for(const UnitId& unit, int64_t m, int64_t n) const {
  if (allocation_) {
    const MatrixAllocation* a = allocation_->find(unit.layer, unit.matrix);
    if (a == nullptr) return MatrixAllocation::kDense;
    CALDERA_CHECK(a->shape.rows == m && a->shape.cols == n, unit.name(), ": rank allocation was made for a ",
                  a->shape.rows, "x", a->shape.cols, " matrix, the weight is ", m, "x", n);
    return a->rank;
  }
  CALDERA_CHECK_AS(ConfigError, params_.rank_search == RankSearch::kUniform, unit.name(),
                   ": --rank-search sensitivity needs the rank allocation of the sensitivity pass ",
                   "(pipeline::allocate_low_rank_ranks); none was given to the method");
  MatrixShape shape{unit.layer, unit.matrix, m, n};
  int64_t rank = MatrixAllocation::kDense;
  if (params_.weight_search() && !(params_.kv_search() && shape.is_kv_projection()))
    rank = uniform_allocation({shape}, RankSearchMode::kWeights, params_.param_ratio).matrices[0].rank;
  if (params_.kv_search() && shape.is_kv_projection())
    rank = uniform_allocation({shape}, RankSearchMode::kKvCache, params_.kv_ratio).matrices[0].rank;
  return rank;
}

CompressedUnit LowRankMethod::compress(const MethodContext& context, MatrixView<const float> w,
                                       const InputStats& stats) const {
  const int64_t m = w.rows, n = w.cols;
  const std::string where = context.unit.name();
  const int64_t rank = rank_for(context.unit, m, n);
  CompressedUnit out;
  auto keep_dense = [&](double fallback) {
    HostMatrix<float> dense(w);
    out.tensors["weight"] = make_tensor(DType::kF32, dense);
    out.metrics = UnitMetrics{};
    out.metrics.params = m * n;
    out.metrics.bits = 16.0 * static_cast<double>(m * n);
    out.metrics.extra = {{"rank", static_cast<double>(std::min(m, n))}, {"dense_fallback", fallback}};
  };
  if (rank == MatrixAllocation::kDense) {
    keep_dense(0.0);
    return out;
  }
  CALDERA_CHECK_AS(ConfigError, rank >= 1, where, ": allocated rank ", rank, " (", m, "x", n,
                   ") keeps nothing; the ratio is too small for this matrix");
  linalg::Backend& backend = context.backend;
  try {
    const InputTransform s = input_transform(backend, stats, n, where);
    const TruncatableSvd svd = TruncatableSvd::compute(backend, w, s, rank, params_.svd_precision);
    const LowRankFactors f = svd.factors(rank, params_.sigma_fuse);
    out.tensors = low_rank_tensors(f);
    const HostMatrix<float> w_hat = reconstruct_low_rank(backend, out.tensors);
    for (int64_t i = 0; i < w_hat.size(); ++i)
      if (!std::isfinite(w_hat.data()[i])) raise<NumericError>(where, ": A·B has non-finite entries after bf16 rounding");
    out.metrics.rel_error = activation_rel_error(backend, w, w_hat.view(), stats);
    out.metrics.params = low_rank_params(m, n, rank);
    out.metrics.bits = 16.0 * static_cast<double>(out.metrics.params);
    const double total = svd.truncation_loss(0);
    out.metrics.extra = {
        {"rank", static_cast<double>(rank)},
        {"ratio", static_cast<double>(out.metrics.params) / static_cast<double>(m * n)},
        {"sigma_energy_dropped", total > 0 ? svd.truncation_loss(rank) / total : 0.0},
        {"dense_fallback", 0.0},
    };
    if (s.kind == TransformKind::kCholesky) out.metrics.extra.emplace_back("damping", s.damping);
    if (s.kind == TransformKind::kDiagonal)
      out.metrics.extra.emplace_back("floored_channels", static_cast<double>(s.floored_channels));
    if (stats.sum_xxt.rows() != n) out.metrics.extra.emplace_back("rel_error_is_frobenius", 1.0);
  } catch (const NumericError& e) {
    // Spec §3.2: keep the original layer (the reference silently puts a random layer there).
    log_warn(where, ": ", name(), " factorization failed (", e.what(), "); the matrix stays dense");
    out.tensors.clear();
    keep_dense(1.0);
  }
  return out;
}

CompressedUnit LowRankMethod::update(linalg::Backend& backend, const UnitId& unit, MatrixView<const float> w,
                                     const CompressedUnit& compressed, const InputStats& inputs) const {
  CALDERA_CHECK(has_update_pass(), unit.name(), ": ", name(), " was not configured with --update local");
  if (compressed.tensors.count("weight") != 0) return compressed;  // kept dense: nothing to refit
  const std::string where = unit.name();
  const HostMatrix<float> b32 = bf16_matrix(require_tensor(compressed.tensors, "B", where), "B");
  HostMatrix<double> b(b32.rows(), b32.cols());
  for (int64_t i = 0; i < b.size(); ++i) b.data()[i] = b32.data()[i];
  CompressedUnit out = compressed;
  try {
    double damping = 0.0;
    LowRankFactors f{refit_left_factor(backend, w, b, inputs.sum_xxt, params_.whitening_damping, where, damping),
                     std::move(b)};
    TensorMap refitted = low_rank_tensors(f);
    // The least-squares A can only lower the output error on these inputs before bf16 rounding;
    // compare after it (exact objective, no ridge) and keep whichever is better.
    const HostMatrix<float> w_before = reconstruct_low_rank(backend, compressed.tensors);
    const HostMatrix<float> w_after = reconstruct_low_rank(backend, refitted);
    const double before = activation_rel_error(backend, w, w_before.view(), inputs, 0.0);
    const double after = activation_rel_error(backend, w, w_after.view(), inputs, 0.0);
    if (after <= before) {
      out.tensors = std::move(refitted);
      out.metrics.rel_error = activation_rel_error(backend, w, w_after.view(), inputs);
    }
    out.metrics.extra.emplace_back("update_output_error_before", before);
    out.metrics.extra.emplace_back("update_output_error_after", std::min(before, after));
    out.metrics.extra.emplace_back("update_damping", damping);
  } catch (const NumericError& e) {
    log_warn(where, ": parameter update failed (", e.what(), "); the unit keeps its phase-2 factors");
    out.metrics.extra.emplace_back("update_failed", 1.0);
  }
  return out;
}

HostMatrix<float> LowRankMethod::reconstruct(linalg::Backend& backend, const TensorMap& tensors) const {
  return reconstruct_low_rank(backend, tensors);
}

std::vector<std::pair<std::string, std::string>> asvd_option_names() {
  return {
      {"method", "asvd | svdllm | svd (low-rank methods)"},
      {"param-ratio", "target overall param ratio of the factorized linears (spec §4), (0, 1]"},
      {"kv-ratio", "target KV-cache ratio Σr/Σd_kv of k_proj/v_proj (spec §6), (0, 1]; 1 = off"},
      {"alpha", "asvd (and svd's sensitivity table): exponent of the activation statistic in S (default 0.5)"},
      {"scaling", "asvd (and svd's sensitivity table): abs-mean | abs-max activation statistic"},
      {"rank-search", "sensitivity (STRS, spec §5; svd takes ASVD's table) | uniform"},
      {"sensitivity-seqs", "calibration sequences for the sensitivity perplexities (default 32)"},
      {"sensitivity-candidates", "comma-separated candidate ratios of the weight search (default 0.4,...,0.9)"},
      {"kv-candidates", "comma-separated candidate ratios of the KV-cache search (default 0.1,...,1.9)"},
      {"sigma-fuse", "UV | U | V: where Σ goes in A·B (default UV)"},
      {"svd-precision", "f32 | f64 precision of W·S and its SVD"},
      {"scaling-floor", "asvd: relative floor of S (default 1e-3)"},
      {"whitening-damping", "svdllm: first relative damping when Σxxᵀ is not positive definite (default 1e-4)"},
      {"update", "svdllm: none | local (SVD-LLM's parameter update, spec §9.1: after phase 2, layer by layer, "
                 "A re-solved by least squares on the inputs of the already-compressed layers; default none)"},
  };
}

void apply_asvd_option(AsvdParams& p, std::string_view key, std::string_view v) {
  if (key == "method") {
    p.method = parse_low_rank_kind(v);
  } else if (key == "param-ratio") {
    p.param_ratio = parse_number(key, v);
  } else if (key == "kv-ratio") {
    p.kv_ratio = parse_number(key, v);
  } else if (key == "alpha") {
    p.alpha = parse_number(key, v);
  } else if (key == "scaling") {
    p.scaling = parse_activation_scaling(v);
  } else if (key == "rank-search") {
    p.rank_search = parse_rank_search(v);
  } else if (key == "sensitivity-seqs") {
    const double d = parse_number(key, v);
    CALDERA_CHECK_AS(ConfigError, d == std::floor(d) && std::fabs(d) < 1e9, "--sensitivity-seqs: an integer expected, found '",
                     v, "'");
    p.sensitivity_sequences = static_cast<int>(d);
  } else if (key == "sensitivity-candidates") {
    p.weight_candidates = parse_number_list(key, v);
  } else if (key == "kv-candidates") {
    p.kv_candidates = parse_number_list(key, v);
  } else if (key == "sigma-fuse") {
    p.sigma_fuse = parse_sigma_fuse(v);
  } else if (key == "svd-precision") {
    p.svd_precision = parse_svd_precision(v);
  } else if (key == "scaling-floor") {
    p.scaling_floor = parse_number(key, v);
  } else if (key == "whitening-damping") {
    p.whitening_damping = parse_number(key, v);
  } else if (key == "update") {
    p.update = parse_low_rank_update(v);
  } else {
    raise<ConfigError>("unknown low-rank method option '", key, "' (known: see asvd_option_names())");
  }
}

std::unique_ptr<Method> make_low_rank_method(const AsvdParams& params, std::optional<RankAllocation> allocation) {
  return std::make_unique<LowRankMethod>(params, std::move(allocation));
}

TensorMap low_rank_tensors(const LowRankFactors& factors) {
  auto to_bf16 = [](const HostMatrix<double>& m) {
    std::vector<uint16_t> bits(static_cast<size_t>(m.size()));
    for (int64_t i = 0; i < m.size(); ++i) bits[static_cast<size_t>(i)] = f32_to_bf16(static_cast<float>(m.data()[i]));
    return make_tensor<uint16_t>(DType::kBF16, {m.rows(), m.cols()}, bits.data());
  };
  TensorMap t;
  t["A"] = to_bf16(factors.a);
  t["B"] = to_bf16(factors.b);
  return t;
}

HostMatrix<float> reconstruct_low_rank(linalg::Backend& backend, const TensorMap& tensors) {
  if (auto it = tensors.find("weight"); it != tensors.end()) {
    const Tensor& t = it->second;
    CALDERA_CHECK(t.dtype == DType::kF32 && t.shape.size() == 2, "low-rank tensor 'weight': f32 2-D expected, found ",
                  dtype_name(t.dtype), " with ", t.shape.size(), " dimensions");
    return HostMatrix<float>(t.matrix<float>());
  }
  const HostMatrix<float> a = bf16_matrix(require_tensor(tensors, "A", "low-rank reconstruct"), "A");
  const HostMatrix<float> b = bf16_matrix(require_tensor(tensors, "B", "low-rank reconstruct"), "B");
  CALDERA_CHECK(a.cols() == b.rows(), "low-rank tensors: A is ", a.rows(), "x", a.cols(), " but B is ", b.rows(), "x",
                b.cols(), " (inner dimensions must match)");
  const int64_t m = a.rows(), n = b.cols();
  HostMatrix<float> w(m, n);
  if (a.cols() == 0) return w;
  auto da = backend.upload(a.view(), "asvd.reconstruct.a");
  auto db = backend.upload(b.view(), "asvd.reconstruct.b");
  auto dw = backend.make<float>(m, n, "asvd.reconstruct.w");
  backend.gemm(linalg::Op::kNoTrans, linalg::Op::kNoTrans, 1.0f, da.cview(), db.cview(), 0.0f, dw.view());
  backend.download(dw.cview(), w.view());
  return w;
}

}  // namespace caldera::algo
