// CALDERA outer loop (spec caldera-quipsharp.md §1.2) with checkpoint/resume.
#include "algo/caldera.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>

#include "algo/bits.h"
#include "algo/caldera_state.h"
#include "algo/hessian.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "quant/hadamard.h"
#include "quant/lattice.h"
#include "quant/ldl.h"
#include "quant/ldlq.h"
#include "quant/rht.h"

namespace caldera::algo {

using detail::CalderaState;
using detail::LrSpec;
using linalg::Backend;
using linalg::Matrix;
using linalg::Op;

std::string_view to_string(QRounding q) noexcept { return q == QRounding::kLdlq ? "ldlq" : "nearest"; }

CalderaParams CalderaParams::quip_sharp(int bits_q) {
  CalderaParams p;
  p.rank = 0;
  p.bits_q = bits_q;
  p.iters = 1;
  p.lplr_iters = 0;
  p.bits_lr = 16;
  p.q_input_rms = 0.9;
  return p;
}

std::vector<std::string> CalderaParams::problems() const {
  std::vector<std::string> out;
  auto add = [&](auto&&... parts) { out.push_back(caldera::detail::concat(parts...)); };
  if (rank < 0) add("--rank must be >= 0, got ", rank);
  if (bits_q < 2 || bits_q > 4) add("--bits-q must be 2, 3 or 4 (E8P12, E8P12RVQ3B, E8P12RVQ4B), got ", bits_q);
  if (iters < 1) add("--iters must be >= 1, got ", iters);
  if (lplr_iters < 0) add("--lplr-iters must be >= 0, got ", lplr_iters);
  if (tune_iters < 0) add("--tune-iters must be >= 0, got ", tune_iters);
  if (!(q_input_rms >= 0.0) || !std::isfinite(q_input_rms)) add("--q-input-rms must be >= 0 (0: codebook default), got ", q_input_rms);
  if (!(hessian_ridge >= 0.0) || !std::isfinite(hessian_ridge)) add("--sigma-reg must be >= 0, got ", hessian_ridge);
  if (!(downdate_sigma >= 0.0) || !std::isfinite(downdate_sigma)) add("--sigma-reg2 must be >= 0, got ", downdate_sigma);
  if (!(downdate_weight >= 0.0 && downdate_weight <= 1.0)) add("--downdate-weight must be in [0, 1], got ", downdate_weight);
  if (rank > 0 && bits_lr != 16) {
    if (factor_format == FactorFormat::kE8p) {
      if (bits_lr < 2 || bits_lr > 4) add("--bits-lr must be 2, 3, 4 or 16 with --factor-format e8p, got ", bits_lr);
      if (rank % 16 != 0) add("--rank must be a multiple of 16 with lattice-quantized factors (spec §5.5), got ", rank);
    } else {
      if (bits_lr < 2 || bits_lr > 8) add("--bits-lr must be 2..8 or 16 with --factor-format uniform, got ", bits_lr);
      if (factor_scales != FactorScaleMode::kPerRow)
        add("--factor-scales must be per-row with --factor-format uniform (one min-max grid per row)");
      if (factor_rounding != FactorRounding::kNearest)
        add("--factor-rounding ldlq needs --factor-format e8p");
    }
  }
  return out;
}

void CalderaParams::validate() const {
  const auto p = problems();
  if (p.empty()) return;
  std::string msg = "invalid CALDERA parameters:";
  for (const auto& s : p) msg += "\n  " + s;
  throw ConfigError(msg);
}

std::vector<std::pair<std::string, std::string>> CalderaParams::key_values() const {
  auto num = [](double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  };
  return {{"rank", std::to_string(rank)},
          {"bits-q", std::to_string(bits_q)},
          {"bits-lr", std::to_string(bits_lr)},
          {"iters", std::to_string(iters)},
          {"lplr-iters", std::to_string(lplr_iters)},
          {"factor-format", std::string(to_string(factor_format))},
          {"factor-scales", std::string(to_string(factor_scales))},
          {"factor-rounding", std::string(to_string(factor_rounding))},
          {"lr-split", std::string(to_string(lr_split))},
          {"lr-svd", std::string(to_string(lr_svd))},
          {"rht", incoherence == Incoherence::kRht ? "on" : "off"},
          {"downdate", downdate == DowndateMode::kOn ? "on" : "off"},
          {"downdate-ridge", std::string(to_string(downdate_ridge))},
          {"downdate-weight", num(downdate_weight)},
          {"q-rounding", std::string(to_string(q_rounding))},
          {"q-input-rms", num(q_input_rms)},
          {"tune-iters", std::to_string(tune_iters)},
          {"sigma-reg", num(hessian_ridge)},
          {"sigma-reg2", num(downdate_sigma)}};
}

CalderaMethod::CalderaMethod(CalderaParams params, std::string name) : params_(params), name_(std::move(name)) {
  params_.validate();
}

double CalderaMethod::cost_estimate(int64_t m, int64_t n) const {
  // Per outer iteration: LDLQ + tune sweeps ~ (1 + 2·tune)·m·n², LR update ~ (n + lplr·k)·m·n.
  const double mn = static_cast<double>(m) * static_cast<double>(n);
  const double q = (1.0 + 2.0 * params_.tune_iters) * mn * static_cast<double>(n);
  const double lr = params_.rank > 0 ? (static_cast<double>(n) + 4.0 * params_.lplr_iters * params_.rank) * mn : 0.0;
  return static_cast<double>(params_.iters) * (q + lr) + static_cast<double>(n) * static_cast<double>(n) * n;
}

namespace {

constexpr int64_t kCheckpointVersion = 1;

// Accumulates per-phase wall time; synchronises the backend so asynchronous work is attributed.
class PhaseTimes {
 public:
  explicit PhaseTimes(Backend& be) : be_(be) {}
  template <class F>
  auto run(const std::string& phase, F&& f) {
    Stopwatch sw;
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      be_.synchronize();
      seconds_[phase] += sw.elapsed_s();
    } else {
      auto r = f();
      be_.synchronize();
      seconds_[phase] += sw.elapsed_s();
      return r;
    }
  }
  const std::map<std::string, double>& seconds() const { return seconds_; }

 private:
  Backend& be_;
  std::map<std::string, double> seconds_;
};

Tensor f64_vector(const std::vector<double>& v) { return make_vector_tensor(DType::kF64, v); }
Tensor i64_scalar(int64_t v) { return make_tensor<int64_t>(DType::kI64, {}, &v); }

}  // namespace

CompressedUnit CalderaMethod::compress(const MethodContext& ctx, MatrixView<const float> w_host,
                                       const InputStats& stats) const {
  Backend& be = ctx.backend;
  const CalderaParams& p = params_;
  const std::string unit = ctx.unit.name();
  const int64_t m = w_host.rows, n = w_host.cols, k = p.rank;
  CALDERA_CHECK_AS(ConfigError, m % 16 == 0 && n % 64 == 0, unit, ": ", name_,
                   " needs out_features % 16 == 0 and in_features % 64 == 0 (E8P packing, spec §5.5), got ", m, "x", n);
  CALDERA_CHECK_AS(ConfigError, k <= std::min(m, n), unit, ": --rank ", k, " exceeds min(m, n) = ", std::min(m, n));
  const LrSpec lr = LrSpec::make(k, p.bits_lr, p.factor_format, p.factor_scales);
  CALDERA_CHECK_AS(ConfigError, lr.format == detail::LrFormat::kFp16 || lr.format == detail::LrFormat::kUniform || m % 64 == 0,
                   unit, ": lattice-quantized L needs out_features % 64 == 0 (Lᵀ packing, spec §5.5), got ", m);
  const LatticeCodebook q_codebook = detail::codebook_for_bits(p.bits_q);
  PhaseTimes times(be);

  // Spec §6.5 Hessian, global scale, RHT (§1.2 preamble, §4).
  const HostMatrix<double> h64 = process_hessian(stats, n, p.hessian_ridge, unit);
  HostMatrix<float> h32(n, n);
  for (int64_t i = 0; i < h32.size(); ++i) h32.data()[i] = static_cast<float>(h64.data()[i]);
  auto w0 = be.upload(w_host, "caldera.w");
  const double ss = be.sum_squares(w0.cview());
  const float global_scale = static_cast<float>(std::sqrt(ss / static_cast<double>(m * n)));
  be.scale(w0.view(), global_scale > 0.0f ? 1.0f / global_scale : 1.0f);
  quant::RhtSigns signs{std::vector<float>(static_cast<size_t>(n), 1.0f), std::vector<float>(static_cast<size_t>(m), 1.0f)};
  Matrix<float> w, h;
  if (p.incoherence == Incoherence::kRht) {
    signs = quant::make_rht_signs(ctx.rng, m, n);
    times.run("rht", [&] {
      w = quant::rht_weight(be, w0.cview(), signs);
      auto h0 = be.upload(h32.cview(), "caldera.h");
      h = quant::rht_hessian(be, h0.cview(), signs);
    });
  } else {
    w = std::move(w0);
    h = be.upload(h32.cview(), "caldera.h");
  }
  // Lower Cholesky factor of H for the whitened LR update and the downdate (once per matrix).
  Matrix<float> chol;
  if (k > 0) {
    times.run("cholesky", [&] {
      chol = be.clone(h.cview(), "caldera.chol");
      be.cholesky(chol.view());
    });
  }
  ActivationErrorMeter meter(be, w.cview(), h.cview());
  // Block LDL of H, once per matrix (H does not change): for the LDLQ rounding of R, and for the Q
  // update whenever it does not downdate H.
  const bool downdating = k > 0 && p.downdate == DowndateMode::kOn && p.q_rounding == QRounding::kLdlq;
  const bool r_ldlq = k > 0 && lr.quantizer && p.factor_rounding == FactorRounding::kLdlq;
  quant::BlockLdl h_ldl;
  if (r_ldlq || (p.q_rounding == QRounding::kLdlq && !downdating))
    h_ldl = times.run("block_ldl", [&] { return quant::block_ldl(be, h.cview()); });
  LplrOptions lplr_options;
  lplr_options.iters = p.lplr_iters;
  if (r_ldlq) {
    lplr_options.h_ldl = &h_ldl;
    lplr_options.h = h.cview();
    lplr_options.tune_iters = p.tune_iters;
  }

  // Loop state, possibly resumed from a checkpoint.
  CalderaState state = CalderaState::zeros(be, m, n, k);
  CalderaState best;
  bool have_best = false;
  double e_min = std::numeric_limits<double>::infinity();
  int best_step = -1;
  std::vector<double> history;
  int start_iter = 0;
  if (ctx.checkpoint != nullptr) {
    if (auto saved = ctx.checkpoint->load()) {
      const TensorMap& t = *saved;
      const auto& ver = require_tensor(t, "ckpt.version", unit + " checkpoint");
      CALDERA_CHECK(ver.dtype == DType::kI64 && ver.as<int64_t>()[0] == kCheckpointVersion, unit,
                    ": checkpoint version ", ver.as<int64_t>()[0], " is not ", kCheckpointVersion);
      start_iter = static_cast<int>(require_tensor(t, "ckpt.iteration", unit).as<int64_t>()[0]);
      best_step = static_cast<int>(require_tensor(t, "ckpt.best_step", unit).as<int64_t>()[0]);
      e_min = require_tensor(t, "ckpt.e_min", unit).as<double>()[0];
      const Tensor& hist = require_tensor(t, "ckpt.history", unit);
      history.assign(hist.as<double>(), hist.as<double>() + hist.numel());
      state = detail::load_state(be, t, p.bits_q, lr, "cur.", m, n);
      best = detail::load_state(be, t, p.bits_q, lr, "best.", m, n);
      have_best = true;
      log_info(unit, ": resuming ", name_, " after outer iteration ", start_iter, " of ", p.iters);
    }
  }

  auto w_hat = be.make<float>(m, n, "caldera.w_hat");
  auto residual = be.make<float>(m, n, "caldera.residual");
  auto residual_white = k > 0 ? be.make<float>(m, n, "caldera.residual_white") : Matrix<float>();
  Matrix<float> h_down = downdating ? be.make<float>(n, n, "caldera.h_downdated") : Matrix<float>();
  std::vector<double> lplr_best_errors;

  auto record = [&](bool complete) {
    double e = 0.0;
    times.run("error", [&] {
      state.compose(be, w_hat.view());
      e = meter.rel_error(w_hat.cview());
    });
    history.push_back(e);
    if (complete && std::isfinite(e) && e < e_min) {
      e_min = e;
      best_step = static_cast<int>(history.size()) - 1;
      state.copy_to(be, best);
      have_best = true;
    }
  };

  for (int it = start_iter; it < p.iters; ++it) {
    // ---- LR update (spec §2) on A = W − Q ----
    if (k > 0) {
      be.copy(w.cview(), residual.view());
      be.axpby(-1.0f, state.q.cview(), 1.0f, residual.view());
      be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, residual.cview(), chol.cview(), 0.0f, residual_white.view());
      const LrProblem problem{residual.cview(), residual_white.cview(), chol.cview()};
      const Rng sketch = ctx.rng.stream({static_cast<uint64_t>(RngPurpose::kSketch), static_cast<uint64_t>(it)});
      auto init = times.run("lr_init", [&] { return lr_init(be, problem, k, p.lr_svd, p.lr_split, sketch); });
      if (lr.format == detail::LrFormat::kFp16) {
        round_to_fp16(be, init.l.view());
        round_to_fp16(be, init.r.view());
        be.copy(init.l.cview(), state.l.view());
        be.copy(init.r.cview(), state.r.values.view());
        be.transpose(state.l.cview(), state.lt.values.view());
      } else {
        auto res = times.run("lplr", [&] { return lplr(be, problem, init, *lr.quantizer, *lr.quantizer, lplr_options); });
        lplr_best_errors.push_back(res.errors[static_cast<size_t>(res.best_candidate)]);
        state.lt = std::move(res.l_t);
        state.r = std::move(res.r);
        state.l = std::move(res.l);
      }
      record(/*complete=*/it > 0);  // spec §1.2: only once both update types have run
    }
    // ---- Q update (spec §3) on A = W − L·R ----
    be.copy(w.cview(), residual.view());
    if (k > 0) be.gemm(Op::kNoTrans, Op::kNoTrans, -1.0f, state.l.cview(), state.r.values.cview(), 1.0f, residual.view());
    if (p.q_rounding == QRounding::kNearest) {
      auto fq = times.run("q_nearest", [&] { return quant::quant_factor(be, residual.cview(), q_codebook); });
      state.q_codes = std::move(fq.codes);
      state.q_scale = fq.scale;
    } else {
      MatrixView<const float> h_q = h.cview();
      quant::BlockLdl down_ldl;
      if (downdating) {
        times.run("downdate", [&] {
          (void)hessian_downdate(be, h.cview(), chol.cview(), state.r.values.cview(), p.downdate_weight,
                                 p.downdate_sigma, p.downdate_ridge, h_down.view());
        });
        h_q = h_down.cview();
        down_ldl = times.run("block_ldl", [&] { return quant::block_ldl(be, h_q); });
      }
      const quant::BlockLdl& ldl = downdating ? down_ldl : h_ldl;
      quant::LatticeLdlqOptions opts;
      opts.codebook = q_codebook;
      opts.input_rms = static_cast<float>(p.q_input_rms);
      opts.tune_iters = p.tune_iters;
      auto res = times.run("ldlq", [&] { return quant::ldlq_lattice_scaled(be, residual.cview(), h_q, ldl, opts); });
      state.q_codes = std::move(res.codes);
      state.q_scale = res.scale;
    }
    detail::dequantize_q(be, state.q_codes.cview(), q_codebook, state.q_scale, state.q.view());
    record(/*complete=*/true);

    if (ctx.checkpoint != nullptr && have_best) {
      TensorMap ckpt;
      ckpt["ckpt.version"] = i64_scalar(kCheckpointVersion);
      ckpt["ckpt.iteration"] = i64_scalar(it + 1);
      ckpt["ckpt.best_step"] = i64_scalar(best_step);
      ckpt["ckpt.e_min"] = make_scalar_tensor(e_min);
      ckpt["ckpt.history"] = f64_vector(history);
      detail::store_state(be, state, p.bits_q, lr, "cur.", ckpt);
      detail::store_state(be, best, p.bits_q, lr, "best.", ckpt);
      times.run("checkpoint", [&] { ctx.checkpoint->save(ckpt); });
    }
    if (ctx.progress) ctx.progress(static_cast<double>(it + 1) / static_cast<double>(p.iters));
    if (it + 1 < p.iters && ctx.stop_requested && ctx.stop_requested()) {
      if (ctx.checkpoint == nullptr) log_warn(unit, ": stop requested but no checkpoint store; progress is lost");
      throw StopRequested();
    }
  }
  CALDERA_CHECK_AS(NumericError, have_best, unit, ": no finite CALDERA iterate (errors: ", history.size(), ")");

  CompressedUnit out;
  TensorMap& t = out.tensors;
  t["format_version"] = i64_scalar(1);
  t["global_scale"] = make_tensor<float>(DType::kF32, {}, &global_scale);
  t["rht"] = i64_scalar(p.incoherence == Incoherence::kRht ? 1 : 0);
  t["su"] = make_vector_tensor(DType::kF32, signs.su);
  t["sv"] = make_vector_tensor(DType::kF32, signs.sv);
  detail::store_state(be, best, p.bits_q, lr, "", t);

  UnitMetrics& mt = out.metrics;
  mt.rel_error = e_min;
  mt.error_history = history;
  mt.bits = paper_bits(m, n, 0, p.bits_q, 0, 0) + lr.storage_bits(m, n);
  mt.params = k * (m + n);
  mt.extra.emplace_back("rank", static_cast<double>(k));
  mt.extra.emplace_back("bits_paper", paper_bits(m, n, k, p.bits_q, lr.bits, lr.bits));
  mt.extra.emplace_back("bits_factor_scales", mt.bits - paper_bits(m, n, k, p.bits_q, lr.bits, lr.bits));
  mt.extra.emplace_back("bits_excluded_signs_scalars", static_cast<double>(m + n) + 32.0 * 4);
  mt.extra.emplace_back("best_step", static_cast<double>(best_step));
  mt.extra.emplace_back("outer_iterations", static_cast<double>(p.iters));
  mt.extra.emplace_back("global_scale", global_scale);
  if (!lplr_best_errors.empty()) mt.extra.emplace_back("lplr_rel_error_last", lplr_best_errors.back());
  for (const auto& [phase, s] : times.seconds()) mt.extra.emplace_back("seconds_" + phase, s);
  return out;
}

namespace {

// What reconstruct() and split_low_rank() read from the stored tensors.
struct StoredUnit {
  detail::CalderaState state;
  quant::RhtSigns signs;
  bool rht = false;
  float global_scale = 0.0f;
  int64_t m = 0, n = 0, rank = 0;
};

StoredUnit load_unit(Backend& be, const TensorMap& tensors) {
  const auto& ver = require_tensor(tensors, "format_version", "CALDERA unit");
  CALDERA_CHECK(ver.dtype == DType::kI64 && ver.as<int64_t>()[0] == 1, "CALDERA unit: format_version ",
                ver.as<int64_t>()[0], " is not supported (expected 1)");
  const Tensor& su = require_tensor(tensors, "su", "CALDERA unit");
  const Tensor& sv = require_tensor(tensors, "sv", "CALDERA unit");
  CALDERA_CHECK(su.dtype == DType::kF32 && sv.dtype == DType::kF32 && su.shape.size() == 1 && sv.shape.size() == 1,
                "CALDERA unit: su / sv must be F32 vectors");
  StoredUnit u;
  u.n = su.shape[0];
  u.m = sv.shape[0];
  const Tensor& qb = require_tensor(tensors, "q_bits", "CALDERA unit");
  CALDERA_CHECK(qb.dtype == DType::kI64 && qb.numel() == 1, "CALDERA unit: q_bits must be an I64 scalar");
  const LrSpec lr = LrSpec::from_tensors(tensors);
  u.rank = lr.rank;
  u.state = detail::load_state(be, tensors, static_cast<int>(qb.as<int64_t>()[0]), lr, "", u.m, u.n);
  const Tensor& rht = require_tensor(tensors, "rht", "CALDERA unit");
  CALDERA_CHECK(rht.dtype == DType::kI64 && rht.numel() == 1, "CALDERA unit: rht must be an I64 scalar");
  u.rht = rht.as<int64_t>()[0] != 0;
  u.signs = quant::RhtSigns{std::vector<float>(su.as<float>(), su.as<float>() + u.n),
                            std::vector<float>(sv.as<float>(), sv.as<float>() + u.m)};
  const Tensor& gs = require_tensor(tensors, "global_scale", "CALDERA unit");
  CALDERA_CHECK(gs.dtype == DType::kF32 && gs.numel() == 1, "CALDERA unit: global_scale must be an F32 scalar");
  u.global_scale = std::max(gs.as<float>()[0], 0.0f);
  return u;
}

// s·D_SV Had_m X Had_nᵀ D_SU (or s·X without the RHT), downloaded.
HostMatrix<float> to_original_basis(Backend& be, const StoredUnit& u, Matrix<float> x) {
  Matrix<float> w = u.rht ? quant::rht_weight_inverse(be, x.cview(), u.signs) : std::move(x);
  be.scale(w.view(), u.global_scale);
  return be.download(w);
}

}  // namespace

HostMatrix<float> CalderaMethod::reconstruct(Backend& be, const TensorMap& tensors) const {
  StoredUnit u = load_unit(be, tensors);
  auto w_hat = be.make<float>(u.m, u.n, "reconstruct.w_hat");
  u.state.compose(be, w_hat.view());
  return to_original_basis(be, u, std::move(w_hat));
}

std::optional<LowRankSplit> CalderaMethod::split_low_rank(Backend& be, const TensorMap& tensors) const {
  StoredUnit u = load_unit(be, tensors);
  if (u.rank == 0) return std::nullopt;
  LowRankSplit split;
  split.base = to_original_basis(be, u, be.clone(u.state.q.cview(), "split.q"));
  // Rows of Lᵀ and of R live in the rotated bases: row ← Had·row ⊙ signs undoes them.
  auto lt = be.clone(u.state.lt.values.cview(), "split.lt");
  auto r = be.clone(u.state.r.values.cview(), "split.r");
  if (u.rht) {
    const auto sv = be.upload(MatrixView<const float>(u.signs.sv.data(), 1, u.m), "split.sv");
    const auto su = be.upload(MatrixView<const float>(u.signs.su.data(), 1, u.n), "split.su");
    be.quant().hadamard_rows(lt.view(), quant::hadamard_factor(u.m), Op::kNoTrans, {}, sv.cview());
    be.quant().hadamard_rows(r.view(), quant::hadamard_factor(u.n), Op::kNoTrans, {}, su.cview());
  }
  be.scale(lt.view(), u.global_scale);
  auto l = be.make<float>(u.m, u.rank, "split.l");
  be.transpose(lt.cview(), l.view());
  split.lora_b = be.download(l);
  split.lora_a = be.download(r);
  return split;
}

}  // namespace caldera::algo
