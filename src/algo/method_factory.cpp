#include "algo/method_factory.h"

#include <charconv>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace caldera::algo {

std::string_view to_string(MethodKind kind) noexcept {
  switch (kind) {
    case MethodKind::kCaldera: return "caldera";
    case MethodKind::kQuip: return "quip";
    case MethodKind::kRtn: return "rtn";
    case MethodKind::kGptq: return "gptq";
    case MethodKind::kSpqr: return "spqr";
  }
  return "?";
}

MethodKind parse_method_kind(std::string_view text) {
  for (MethodKind k : {MethodKind::kCaldera, MethodKind::kQuip, MethodKind::kRtn, MethodKind::kGptq, MethodKind::kSpqr})
    if (text == to_string(k)) return k;
  raise<ConfigError>("--method: expected caldera, quip, rtn, gptq or spqr, got '", text, "'");
}

MethodConfig MethodConfig::defaults(MethodKind kind) {
  MethodConfig c;
  c.method = kind;
  if (kind == MethodKind::kQuip) c.caldera = CalderaParams::quip_sharp();
  return c;
}

std::vector<std::string> MethodConfig::problems() const {
  switch (method) {
    case MethodKind::kCaldera: return caldera.problems();
    case MethodKind::kQuip: {
      auto p = caldera.problems();
      if (caldera.rank != 0) p.push_back(caldera::detail::concat("--rank must be 0 for --method quip, got ", caldera.rank));
      return p;
    }
    case MethodKind::kRtn: return rtn.problems();
    case MethodKind::kGptq: return gptq.problems();
    case MethodKind::kSpqr: return spqr.problems();
  }
  return {"--method: unknown method"};
}

void MethodConfig::validate() const {
  const auto p = problems();
  if (p.empty()) return;
  std::string msg = "invalid configuration for --method ";
  msg += to_string(method);
  msg += ":";
  for (const auto& s : p) msg += "\n  " + s;
  throw ConfigError(msg);
}

namespace {

int parse_int(std::string_view key, std::string_view v) {
  int out = 0;
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size()) raise<ConfigError>("--", key, ": expected an integer, got '", v, "'");
  return out;
}

double parse_double(std::string_view key, std::string_view v) {
  const std::string s(v);
  char* end = nullptr;
  const double out = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) raise<ConfigError>("--", key, ": expected a number, got '", v, "'");
  return out;
}

template <class E>
E parse_choice(std::string_view key, std::string_view v, std::initializer_list<std::pair<std::string_view, E>> choices) {
  std::string accepted;
  for (const auto& [name, value] : choices) {
    if (v == name) return value;
    accepted += accepted.empty() ? "" : " | ";
    accepted += name;
  }
  raise<ConfigError>("--", key, ": expected ", accepted, ", got '", v, "'");
}

}  // namespace

std::vector<std::pair<std::string, std::string>> method_option_names() {
  return {{"method", "compression method: caldera | quip | rtn | gptq | spqr"},
          {"rank", "rank k of L·R (caldera; multiple of 16 for quantized factors; quip: 0)"},
          {"bits-q", "bits per weight of Q (caldera/quip: 2 | 3 | 4) or of the RTN grid (2..8)"},
          {"bits-lr", "bits of L and R: 16 (fp16) or 2..4 (e8p) / 2..8 (uniform)"},
          {"iters", "outer iterations (LR then Q updates)"},
          {"lplr-iters", "inner LPLR iterations per LR update"},
          {"factor-format", "quantizer of L and R: e8p | uniform"},
          {"factor-scales", "scales of quantized L and R: per-tensor (paper) | per-row"},
          {"factor-rounding", "rounding of R in LPLR: nearest (paper) | ldlq (against the layer Hessian)"},
          {"lr-split", "initial split of the singular values: unbalanced (paper) | balanced"},
          {"lr-svd", "top-k SVD of the LR initialisation: exact | randomized"},
          {"rht", "randomized Hadamard transform: on | off"},
          {"downdate", "Hessian downdate before the Q update: on | off"},
          {"downdate-ridge", "lambda_min of the downdated Hessian: psd (0) | exact (eigensolve)"},
          {"q-rounding", "rounding of Q: ldlq | nearest"},
          {"q-input-rms", "RMS of the LDLQ input (0: codebook default 1.03; QuIP# uses 0.9)"},
          {"tune-iters", "LDLQ tune sweeps"},
          {"sigma-reg", "Hessian ridge (fraction of the mean diagonal)"},
          {"sigma-reg2", "ridge of the downdated Hessian"},
          {"group-size", "RTN / GPTQ: columns per (scale, zero) group, 0 = per output channel; SpQR: beta1"},
          {"rtn-grid", "RTN grid: minmax | gptq"},
          {"bits", "GPTQ (2..8) / SpQR (2..16): bits per weight code"},
          {"stat-bits", "SpQR: bits of the quantized scales and zero points (1..8), or 16 / 32 for fp16 / fp32"},
          {"stat-group-size", "SpQR: beta2, rows whose statistics are quantized together"},
          {"outlier-threshold", "SpQR: relative outlier threshold tau (inf: no outliers)"},
          {"outlier-max-rate", "SpQR: per-matrix outlier budget of the tau search (>= 1: no search)"},
          {"percdamp", "GPTQ / SpQR: Hessian damping, fraction of the mean diagonal"},
          {"act-order", "GPTQ / SpQR: columns in decreasing diag(H) order: on | off"},
          {"simplified-outliers", "SpQR: fit statistics without the leave-one-out pre-filter: on | off"},
          {"block-size", "GPTQ / SpQR: lazy-update block width (speed only)"}};
}

void apply_method_option(MethodConfig& c, std::string_view key, std::string_view v) {
  CalderaParams& p = c.caldera;
  if (key == "method") {
    c = MethodConfig::defaults(parse_method_kind(v));
  } else if (key == "rank") {
    p.rank = parse_int(key, v);
  } else if (key == "bits-q") {
    p.bits_q = parse_int(key, v);
    c.rtn.bits = p.bits_q;
  } else if (key == "bits-lr") {
    p.bits_lr = parse_int(key, v);
  } else if (key == "iters") {
    p.iters = parse_int(key, v);
  } else if (key == "lplr-iters") {
    p.lplr_iters = parse_int(key, v);
  } else if (key == "factor-format") {
    p.factor_format = parse_choice<FactorFormat>(key, v, {{"e8p", FactorFormat::kE8p}, {"uniform", FactorFormat::kUniform}});
  } else if (key == "factor-scales") {
    p.factor_scales = parse_choice<FactorScaleMode>(
        key, v, {{"per-tensor", FactorScaleMode::kPerTensor}, {"per-row", FactorScaleMode::kPerRow}});
  } else if (key == "factor-rounding") {
    p.factor_rounding =
        parse_choice<FactorRounding>(key, v, {{"nearest", FactorRounding::kNearest}, {"ldlq", FactorRounding::kLdlq}});
  } else if (key == "lr-split") {
    p.lr_split = parse_choice<LrSplit>(key, v, {{"unbalanced", LrSplit::kUnbalanced}, {"balanced", LrSplit::kBalanced}});
  } else if (key == "lr-svd") {
    p.lr_svd = parse_choice<LrSvdSolver>(key, v, {{"exact", LrSvdSolver::kExact}, {"randomized", LrSvdSolver::kRandomized}});
  } else if (key == "rht") {
    p.incoherence = parse_choice<Incoherence>(key, v, {{"on", Incoherence::kRht}, {"off", Incoherence::kNone}});
  } else if (key == "downdate") {
    p.downdate = parse_choice<DowndateMode>(key, v, {{"on", DowndateMode::kOn}, {"off", DowndateMode::kOff}});
  } else if (key == "downdate-ridge") {
    p.downdate_ridge = parse_choice<DowndateRidge>(key, v, {{"psd", DowndateRidge::kPsd}, {"exact", DowndateRidge::kExact}});
  } else if (key == "q-rounding") {
    p.q_rounding = parse_choice<QRounding>(key, v, {{"ldlq", QRounding::kLdlq}, {"nearest", QRounding::kNearest}});
  } else if (key == "q-input-rms") {
    p.q_input_rms = parse_double(key, v);
  } else if (key == "tune-iters") {
    p.tune_iters = parse_int(key, v);
  } else if (key == "sigma-reg") {
    p.hessian_ridge = parse_double(key, v);
  } else if (key == "sigma-reg2") {
    p.downdate_sigma = parse_double(key, v);
  } else if (key == "group-size") {
    c.rtn.group_size = parse_int(key, v);
    c.gptq.group_size = c.rtn.group_size;
    c.spqr.group_size = c.rtn.group_size;
  } else if (key == "bits") {
    c.gptq.bits = c.spqr.bits = parse_int(key, v);
  } else if (key == "stat-bits") {
    c.spqr.stat_bits = parse_int(key, v);
  } else if (key == "stat-group-size") {
    c.spqr.stat_group_size = parse_int(key, v);
  } else if (key == "outlier-threshold") {
    c.spqr.outlier_threshold = parse_double(key, v);
  } else if (key == "outlier-max-rate") {
    c.spqr.outlier_max_rate = parse_double(key, v);
  } else if (key == "percdamp") {
    c.gptq.percdamp = c.spqr.percdamp = parse_double(key, v);
  } else if (key == "act-order") {
    c.gptq.order = c.spqr.order = parse_choice<ColumnOrder>(
        key, v, {{"on", ColumnOrder::kActOrder}, {"off", ColumnOrder::kIdentity}});
  } else if (key == "simplified-outliers") {
    c.spqr.outlier_selection = parse_choice<OutlierSelection>(
        key, v, {{"on", OutlierSelection::kSimplified}, {"off", OutlierSelection::kLeaveOneOut}});
  } else if (key == "block-size") {
    c.gptq.block_size = c.spqr.block_size = parse_int(key, v);
  } else if (key == "rtn-grid") {
    c.rtn.grid = parse_choice<RtnGrid>(key, v, {{"minmax", RtnGrid::kMinMax}, {"gptq", RtnGrid::kGptq}});
  } else {
    raise<ConfigError>("unknown method option '", key, "' (known: see method_option_names())");
  }
}

std::unique_ptr<Method> make_method(const MethodConfig& config) {
  config.validate();
  switch (config.method) {
    case MethodKind::kCaldera: return std::make_unique<CalderaMethod>(config.caldera, "caldera");
    case MethodKind::kQuip: return std::make_unique<CalderaMethod>(config.caldera, "quip");
    case MethodKind::kRtn: return std::make_unique<RtnMethod>(config.rtn);
    case MethodKind::kGptq: return make_gptq_method(config.gptq);
    case MethodKind::kSpqr: return make_spqr_method(config.spqr);
  }
  raise<ConfigError>("--method: unknown method");
}

}  // namespace caldera::algo
