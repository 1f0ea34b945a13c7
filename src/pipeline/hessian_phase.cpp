#include "pipeline/hessian_phase.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"

namespace caldera::pipeline {
namespace {

using model::HessianInput;

}  // namespace

void HessianPhaseOptions::validate() const {
  forward.validate();
  std::string problems;
  if (workdir.empty()) problems += " --workdir is required;";
  if (writer_rank < 0) problems += detail::concat(" writer rank must be >= 0 (found ", writer_rank, ");");
  if (!problems.empty()) raise<ConfigError>("invalid hessians options:", problems);
}

HessianPhase::HessianPhase(linalg::Backend& backend, comm::Communicator& world, const model::WeightSource& source,
                           std::span<const uint32_t> local_tokens, HessianPhaseOptions options)
    : backend_(backend),
      world_(world),
      source_(source),
      options_((options.validate(), std::move(options))),
      taps_(backend, source.config()) {
  CALDERA_CHECK_AS(ConfigError, options_.writer_rank < world_.size(), "writer rank ", options_.writer_rank,
                   " outside a world of ", world_.size());
  source_.config().check_sequence_length(options_.forward.seq_len);
  ids_ = model::checked_token_ids(source_.config(), local_tokens, options_.forward.seq_len);
  local_seqs_ = static_cast<int64_t>(ids_.size()) / options_.forward.seq_len;
  global_seqs_ = world_.allreduce_value<int64_t>(local_seqs_, comm::ReduceOp::kSum);
  CALDERA_CHECK_AS(ConfigError, global_seqs_ > 0, "hessians: no calibration sequences");
  reducer_ = make_hessian_reducer(backend_, world_);
  report_.reducer = std::string(reducer_->name());
  log_info("hessians: ", global_seqs_, " sequences over ", world_.size(), " ranks (", local_seqs_,
           " here), sums reduced by ", report_.reducer);
}

io::HessianFileMeta HessianPhase::meta(int64_t layer) const {
  return {layer, options_.model_fingerprint, options_.calibration_sha256, options_.forward.seq_len};
}

std::vector<LayerAction> HessianPhase::plan() const {
  const int64_t n_layers = source_.config().num_hidden_layers;
  std::vector<uint8_t> done(static_cast<size_t>(n_layers), 0);
  if (world_.rank() == options_.writer_rank) {
    for (int64_t l = 0; l < n_layers; ++l) {
      const auto path = io::hessian_file_path(options_.workdir, l);
      if (!std::filesystem::exists(path)) continue;
      try {
        io::verify_hessian_file(path, "", meta(l));
        done[static_cast<size_t>(l)] = 1;
      } catch (const IoError& e) {
        log_warn("hessians: ", path.string(), " does not verify and will be recomputed: ", e.what());
      }
    }
  }
  world_.broadcast(done, options_.writer_rank);
  int64_t last_needed = -1;
  for (int64_t l = 0; l < n_layers; ++l)
    if (done[static_cast<size_t>(l)] == 0) last_needed = l;
  std::vector<LayerAction> actions(static_cast<size_t>(n_layers));
  for (int64_t l = 0; l < n_layers; ++l)
    actions[static_cast<size_t>(l)] = l > last_needed                    ? LayerAction::kSkip
                                      : done[static_cast<size_t>(l)] != 0 ? LayerAction::kForwardOnly
                                                                          : LayerAction::kCollect;
  return actions;
}

void HessianPhase::restore(int64_t next_layer, const HostMatrix<float>& activations) {
  CALDERA_CHECK(next_layer_ == 0, "hessians: restore after layers were run");
  CALDERA_CHECK(activations.rows() == static_cast<int64_t>(ids_.size()) && activations.cols() == source_.config().hidden_size,
                "hessians: snapshot of ", activations.rows(), "x", activations.cols(), " activations, expected ",
                ids_.size(), "x", source_.config().hidden_size);
  hidden_ = backend_.upload(activations.cview(), "hessian activations");
  embedded_ = true;
  for (int64_t l = 0; l < next_layer; ++l) report_.files.push_back(io::hessian_file_path(options_.workdir, l));
  report_.layers_reused += next_layer;
  next_layer_ = next_layer;
}

void HessianPhase::ensure_embedded() {
  if (embedded_) return;
  hidden_ = model::embed_sequences(backend_, source_, ids_);
  embedded_ = true;
}

void HessianPhase::run_layer(int64_t layer, LayerAction action) {
  CALDERA_CHECK(layer == next_layer_, "hessians: layer ", layer, " run out of order (expected ", next_layer_, ")");
  ++next_layer_;
  const auto path = io::hessian_file_path(options_.workdir, layer);
  if (action == LayerAction::kSkip) {
    if (options_.before_propagate) options_.before_propagate(layer);
    report_.files.push_back(path);
    ++report_.layers_reused;
    return;
  }
  Stopwatch watch;
  ensure_embedded();
  const model::LlamaConfig& config = source_.config();
  const bool collect = action == LayerAction::kCollect;
  if (collect) taps_.reset();
  if (local_seqs_ > 0 && (collect || options_.propagate == nullptr)) {
    const auto weights = model::LayerWeights::load(backend_, source_, layer);
    if (options_.propagate == nullptr) {
      model::forward_layer_batched(backend_, config, weights, hidden_.view(), options_.forward,
                                   collect ? &taps_ : nullptr);
    } else {
      model::collect_layer_taps(backend_, config, weights, hidden_.cview(), options_.forward, taps_);
    }
  }
  if (collect) reduce_and_write(layer);
  if (options_.before_propagate) options_.before_propagate(layer);
  if (options_.propagate != nullptr && local_seqs_ > 0) {
    const auto weights = model::LayerWeights::load(backend_, *options_.propagate, layer);
    model::forward_layer_batched(backend_, config, weights, hidden_.view(), options_.forward, nullptr);
  }
  if (collect) {
    ++report_.layers_collected;
    log_info(options_.name, ": layer ", layer, "/", config.num_hidden_layers, " collected (", watch.elapsed_s(), " s)");
  } else {
    ++report_.layers_reused;
    log_info(options_.name, ": layer ", layer, " verified earlier, forward only (", watch.elapsed_s(), " s)");
  }
  report_.files.push_back(path);
}

void HessianPhase::reduce_and_write(int64_t layer) {
  const bool writer = world_.rank() == options_.writer_rank;
  io::LayerHessians h;
  h.meta = meta(layer);
  for (HessianInput input : model::kAllHessianInputs) {
    HostMatrix<double> sum = reduce_fixed_symmetric(input, taps_.sum_fixed(input));
    HostMatrix<double> mu = reduce_fixed_vector(taps_.mu_sum_fixed(input));
    HostMatrix<double> sum_abs = reduce_fixed_vector(taps_.sum_abs_fixed(input));
    std::vector<double> max_abs = backend_.download(taps_.max_abs(input)).storage();
    world_.allreduce(std::span<double>(max_abs), comm::ReduceOp::kMax);
    const int64_t count = world_.allreduce_value<int64_t>(taps_.count(input), comm::ReduceOp::kSum);
    if (!writer) continue;
    io::HessianSum& s = h[input];
    s.n = sum.rows();
    s.count = count;
    s.sum = std::move(sum);
    s.mu_sum = std::move(mu.storage());
    s.sum_abs = std::move(sum_abs.storage());
    s.max_abs = std::move(max_abs);
  }
  if (!writer) return;
  const auto path = io::hessian_file_path(options_.workdir, layer);
  std::filesystem::create_directories(path.parent_path());
  const io::PublishedFile published = io::write_hessian_file(path, h);
  log_debug("hessians: wrote ", published.path.string(), " (", published.size_bytes, " bytes, sha256 ",
            published.sha256, ")");
}

// The fixed-point sums travel as three exactly representable fp64 chunks (Backend::fixed_chunk):
// the reducers add integers below 2^53, which is exact in any order, so the result on the writer is
// the exact total whatever the world size; it is rounded to fp64 once, there.
HostMatrix<double> HessianPhase::reduce_fixed_symmetric(HessianInput input, MatrixView<const Fixed128> sum) {
  const int64_t n = sum.rows;
  auto chunk = backend_.make<double>(n, n, detail::concat("hessian reduce chunk ", model::to_string(input)));
  HostMatrix<double> parts[3];
  for (int k = 0; k < 3; ++k) {
    backend_.fixed_chunk(sum, k, chunk.view());
    parts[k] = reducer_->reduce_symmetric(chunk.view(), options_.writer_rank);
  }
  if (world_.rank() != options_.writer_rank) return {};
  HostMatrix<double> out(n, n);
  for (int64_t i = 0; i < out.size(); ++i) {
    const double c[3] = {parts[0].data()[i], parts[1].data()[i], parts[2].data()[i]};
    out.data()[i] = from_fixed(chunks_to_fixed(c));
  }
  return out;
}

HostMatrix<double> HessianPhase::reduce_fixed_vector(MatrixView<const Fixed128> v) {
  auto chunk = backend_.make<double>(1, v.size(), "hessian reduce chunk mu_sum");
  std::vector<double> parts[3];
  for (int k = 0; k < 3; ++k) {
    backend_.fixed_chunk(v, k, chunk.view());
    parts[k] = reducer_->reduce_vector(chunk.view(), options_.writer_rank);
  }
  if (world_.rank() != options_.writer_rank) return {};
  HostMatrix<double> out(1, v.size());
  for (int64_t i = 0; i < out.size(); ++i) {
    const double c[3] = {parts[0][static_cast<size_t>(i)], parts[1][static_cast<size_t>(i)],
                         parts[2][static_cast<size_t>(i)]};
    out.data()[i] = from_fixed(chunks_to_fixed(c));
  }
  return out;
}

HessianPhaseReport HessianPhase::run() {
  Stopwatch watch;
  const auto actions = plan();
  for (int64_t l = 0; l < static_cast<int64_t>(actions.size()); ++l) run_layer(l, actions[static_cast<size_t>(l)]);
  report_.sequences = global_seqs_;
  report_.tokens = global_seqs_ * options_.forward.seq_len;
  report_.seconds = watch.elapsed_s();
  return report_;
}

HessianPhaseReport run_hessian_phase(linalg::Backend& backend, comm::Communicator& world,
                                     const model::WeightSource& source, std::span<const uint32_t> local_tokens,
                                     const HessianPhaseOptions& options) {
  HessianPhase phase(backend, world, source, local_tokens, options);
  return phase.run();
}

}  // namespace caldera::pipeline
