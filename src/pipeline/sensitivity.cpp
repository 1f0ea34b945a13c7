#include "pipeline/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>

#include "comm/partition.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/atomic_file.h"
#include "io/sha256.h"

namespace caldera::pipeline {
namespace {

using algo::MatrixShape;
using algo::RankSearchMode;

constexpr const char* kTableFormat = "caldera-dist/sensitivity";
constexpr int64_t kTableVersion = 1;

model::LinearKind linear_kind_of(const MatrixShape& s) {
  for (model::LinearKind k : model::kAllLinearKinds)
    if (model::hf_module_name(k) == s.matrix) return k;
  raise<Error>("sensitivity: '", s.matrix, "' (", s.name(), ") is not a decoder-layer linear");
}

/// Writes `text` to `path` through io::publish_atomically (temp file, fsync, rename; DESIGN §3).
void write_text_atomic(const std::filesystem::path& path, const std::string& text) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) raise<IoError>(path.parent_path().string(), ": cannot create directory: ", ec.message());
  io::publish_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.flush()) raise<IoError>(tmp.string(), ": write failed");
  });
}

std::filesystem::path layer_file(const std::filesystem::path& dir, RankSearchMode mode, int64_t layer) {
  char name[32];
  std::snprintf(name, sizeof(name), "layer_%03lld.json", static_cast<long long>(layer));
  return dir / std::string(algo::to_string(mode)) / name;
}

std::filesystem::path base_file(const std::filesystem::path& dir, RankSearchMode mode) {
  return dir / std::string(algo::to_string(mode)) / "base.json";
}

/// The body whose SHA-256 seals a table file.
io::JsonValue sealed_body(const io::JsonValue& key, int64_t layer, const io::JsonValue& payload) {
  io::JsonValue b = io::JsonValue::object();
  b.set("key", key);
  b.set("layer", layer);
  b.set("payload", payload);
  return b;
}

void write_sealed(const std::filesystem::path& path, const io::JsonValue& key, int64_t layer,
                  const io::JsonValue& payload) {
  io::JsonValue doc = io::JsonValue::object();
  doc.set("format", kTableFormat);
  doc.set("version", kTableVersion);
  doc.set("key", key);
  doc.set("layer", layer);
  doc.set("payload", payload);
  doc.set("sha256", io::sha256_hex(sealed_body(key, layer, payload).dump()));
  write_text_atomic(path, doc.dump(1) + "\n");
}

/// The payload of a sealed file when it exists, verifies and has this key; nullopt otherwise
/// (logging why, so a recomputation is never silent).
std::optional<io::JsonValue> read_sealed(const std::filesystem::path& path, const io::JsonValue& key, int64_t layer) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  try {
    const io::JsonValue doc = io::JsonValue::read_file(path);
    if (doc.at("format").as_string() != kTableFormat || doc.at("version").as_int() != kTableVersion) {
      log_warn(path.string(), ": unknown sensitivity table format/version; recomputing");
      return std::nullopt;
    }
    const io::JsonValue& payload = doc.at("payload");
    if (io::sha256_hex(sealed_body(doc.at("key"), doc.at("layer").as_int(), payload).dump()) !=
        doc.at("sha256").as_string()) {
      log_warn(path.string(), ": checksum mismatch (corrupt or edited); recomputing");
      return std::nullopt;
    }
    if (!(doc.at("key") == key) || doc.at("layer").as_int() != layer) {
      log_warn(path.string(), ": written for other settings (key differs); recomputing");
      return std::nullopt;
    }
    return payload;
  } catch (const Error& e) {
    log_warn(path.string(), ": unreadable (", e.what(), "); recomputing");
    return std::nullopt;
  }
}

io::JsonValue number_or_null(double v) { return std::isfinite(v) ? io::JsonValue(v) : io::JsonValue(); }

/// Walks the unmodified model layer by layer on this rank's sequences and evaluates perplexities
/// with one layer's weights modified.
class SensitivityRunner {
 public:
  SensitivityRunner(linalg::Backend& backend, comm::Communicator& world, const model::WeightSource& source,
                    std::span<const uint32_t> local_tokens, const SensitivityOptions& options)
      : backend_(backend), world_(world), source_(source), config_(source.config()), options_(options) {
    options_.forward.validate();
    config_.check_sequence_length(options_.forward.seq_len);
    CALDERA_CHECK_AS(ConfigError, options_.forward.seq_len >= 2, "--seq-len must be >= 2, found ",
                     options_.forward.seq_len);
    ids_ = model::checked_token_ids(config_, local_tokens, options_.forward.seq_len);
    local_seqs_ = static_cast<int64_t>(ids_.size()) / options_.forward.seq_len;
    layers_.resize(static_cast<size_t>(config_.num_hidden_layers));
    if (local_seqs_ > 0) {
      hidden_ = model::embed_sequences(backend_, source_, ids_);
      final_norm_ = backend_.upload(source_.load_final_norm().cview(), "sensitivity.final_norm");
      lm_head_ = backend_.upload(source_.load_lm_head().cview(), "sensitivity.lm_head");
    }
  }

  /// Perplexity over all ranks with layer `layer` replaced by `modified` (the layers after it
  /// original), starting from the current base activations entering `layer`. Collective.
  double perplexity_with(int64_t layer, const model::LayerHostWeights& modified) {
    double nll_sum = 0;
    if (local_seqs_ > 0) {
      auto h = backend_.clone(hidden_.cview(), "sensitivity.hidden");
      {
        const auto w = model::LayerWeights::upload(backend_, config_, layer, modified, source_.storage_dtype());
        model::forward_layer_batched(backend_, config_, w, h.view(), options_.forward, nullptr);
      }
      for (int64_t l = layer + 1; l < config_.num_hidden_layers; ++l) run_original(l, h.view());
      nll_sum = local_nll_sum(h.cview());
    }
    return finish(nll_sum);
  }

  /// Moves the base activations through `layer` with its original weights.
  void advance(int64_t layer) {
    if (local_seqs_ > 0) run_original(layer, hidden_.view());
  }

  /// Perplexity of the unmodified model (after advance() through every layer). Collective.
  double base_perplexity() { return finish(local_seqs_ > 0 ? local_nll_sum(hidden_.cview()) : 0.0); }

 private:
  void run_original(int64_t layer, MatrixView<float> h) {
    auto& slot = layers_[static_cast<size_t>(layer)];
    if (!slot) slot.emplace(model::LayerWeights::load(backend_, source_, layer));
    model::forward_layer_batched(backend_, config_, *slot, h, options_.forward, nullptr);
    if (options_.layer_cache == LayerCache::kReload) slot.reset();
  }

  double local_nll_sum(MatrixView<const float> h) {
    const auto& f = options_.forward;
    std::vector<double> nll(static_cast<size_t>(h.rows));
    const int64_t rows_per_batch = f.micro_batch_seqs * f.seq_len;
    for (int64_t r0 = 0; r0 < h.rows; r0 += rows_per_batch) {
      const int64_t n = std::min(rows_per_batch, h.rows - r0);
      model::sequence_nll(backend_, config_, h.rows_range(r0, n), final_norm_.cview(), lm_head_.cview(),
                          std::span<const int32_t>(ids_).subspan(static_cast<size_t>(r0), static_cast<size_t>(n)),
                          f.seq_len, f.vocab_chunk,
                          std::span<double>(nll).subspan(static_cast<size_t>(r0), static_cast<size_t>(n)));
    }
    double s = 0;
    for (double v : nll) s += v;
    return s;
  }

  double finish(double local_sum) {
    const double sum = world_.allreduce_value(local_sum, comm::ReduceOp::kSum);
    const int64_t seqs = world_.allreduce_value<int64_t>(local_seqs_, comm::ReduceOp::kSum);
    CALDERA_CHECK_AS(ConfigError, seqs > 0, "sensitivity: no sequences to evaluate");
    const double nll = sum / static_cast<double>(seqs * (options_.forward.seq_len - 1));
    return std::isfinite(nll) ? std::exp(nll) : std::numeric_limits<double>::infinity();
  }

  linalg::Backend& backend_;
  comm::Communicator& world_;
  const model::WeightSource& source_;
  const model::LlamaConfig& config_;
  SensitivityOptions options_;
  std::vector<int32_t> ids_;
  int64_t local_seqs_ = 0;
  linalg::Matrix<float> hidden_, final_norm_, lm_head_;
  std::vector<std::optional<model::LayerWeights>> layers_;
};

}  // namespace

std::vector<MatrixShape> model_matrices(const model::LlamaConfig& config) {
  std::vector<MatrixShape> out;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer)
    for (model::LinearKind k : model::kAllLinearKinds) {
      const model::LinearShape s = config.linear_shape(k);
      out.push_back({static_cast<int>(layer), std::string(model::hf_module_name(k)), s.out, s.in});
    }
  return out;
}

io::JsonValue sensitivity_key(const algo::AsvdParams& params, RankSearchMode mode,
                              const std::vector<MatrixShape>& matrices, int64_t n_sequences, int64_t seq_len,
                              const std::string& data_fingerprint) {
  io::JsonValue key = io::JsonValue::object();
  key.set("mode", std::string(algo::to_string(mode)));
  // Everything that changes a factorization; the targets and the search do not.
  for (const auto& [k, v] : params.to_pairs()) {
    if (k == "param_ratio" || k == "kv_ratio" || k == "rank_search" || k == "weight_candidates" ||
        k == "kv_candidates" || k == "sensitivity_sequences")
      continue;
    key.set(k, v);
  }
  io::JsonValue cands = io::JsonValue::array();
  for (double c : params.candidates(mode)) cands.push_back(c);
  key.set("candidates", cands);
  key.set("n_sequences", n_sequences);
  key.set("seq_len", seq_len);
  std::string names;
  for (const auto& m : matrices) names += m.name() + ":" + std::to_string(m.rows) + "x" + std::to_string(m.cols) + ";";
  key.set("matrices_sha256", io::sha256_hex(names));
  key.set("data", data_fingerprint);
  return key;
}

algo::SensitivityTable compute_sensitivity(linalg::Backend& backend, comm::Communicator& world,
                                           const model::WeightSource& source, std::span<const uint32_t> local_tokens,
                                           int64_t n_sequences, const InputStatsProvider& stats,
                                           const algo::AsvdParams& params, RankSearchMode mode,
                                           const std::vector<MatrixShape>& matrices,
                                           const SensitivityOptions& options) {
  const model::LlamaConfig& config = source.config();
  const algo::LowRankMethod method(params);
  algo::SensitivityTable table;
  table.mode = mode;
  table.matrices = matrices;
  table.candidates = params.candidates(mode);
  table.ppl.assign(matrices.size() * table.candidates.size(), std::numeric_limits<double>::quiet_NaN());
  table.validate();
  const size_t n_cand = table.candidates.size();
  const io::JsonValue key =
      sensitivity_key(params, mode, matrices, n_sequences, options.forward.seq_len, options.data_fingerprint);
  const bool files = !options.dir.empty();

  std::map<int64_t, std::vector<size_t>> by_layer;
  for (size_t i = 0; i < matrices.size(); ++i) {
    CALDERA_CHECK(matrices[i].layer >= 0 && matrices[i].layer < config.num_hidden_layers, "sensitivity: ",
                  matrices[i].name(), " outside the model's ", config.num_hidden_layers, " layers");
    const model::LinearShape s = config.linear_shape(linear_kind_of(matrices[i]));
    CALDERA_CHECK(s.out == matrices[i].rows && s.in == matrices[i].cols, "sensitivity: ", matrices[i].name(), " is ",
                  matrices[i].rows, "x", matrices[i].cols, " but the model's is ", s.out, "x", s.in);
    by_layer[matrices[i].layer].push_back(i);
  }

  // Rank 0 reads the finished layers; everyone takes its view (a shared file system may lag).
  std::vector<int64_t> done(static_cast<size_t>(config.num_hidden_layers), 0);
  double base = std::numeric_limits<double>::quiet_NaN();
  if (files && world.rank() == 0) {
    for (const auto& [layer, rows] : by_layer) {
      const auto payload = read_sealed(layer_file(options.dir, mode, layer), key, layer);
      if (!payload) continue;
      const auto& arr = payload->at("rows").as_array();
      bool ok = arr.size() == rows.size();
      for (size_t r = 0; ok && r < rows.size(); ++r) {
        ok = arr[r].at("matrix").as_string() == matrices[rows[r]].matrix && arr[r].at("ppl").size() == n_cand;
        for (size_t c = 0; ok && c < n_cand; ++c) {
          const io::JsonValue& v = arr[r].at("ppl").as_array()[c];
          table.at(rows[r], c) = v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.as_double();
        }
      }
      if (ok) done[static_cast<size_t>(layer)] = 1;
    }
    if (const auto payload = read_sealed(base_file(options.dir, mode), key, -1)) base = payload->at("base_ppl").as_double();
  }
  world.broadcast(done, 0);
  world.broadcast(table.ppl, 0);
  std::vector<double> base_v{base};
  world.broadcast(base_v, 0);
  base = base_v[0];
  int64_t todo = 0;
  for (const auto& [layer, rows] : by_layer) todo += done[static_cast<size_t>(layer)] ? 0 : 1;
  if (todo == 0 && std::isfinite(base)) {
    log_info("sensitivity (", algo::to_string(mode), "): every layer loaded from ", options.dir.string());
    table.base_ppl = base;
    return table;
  }

  Stopwatch watch;
  SensitivityRunner runner(backend, world, source, local_tokens, options);
  std::map<model::HessianInput, algo::InputStats> layer_stats;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    auto it = by_layer.find(layer);
    if (it != by_layer.end() && !done[static_cast<size_t>(layer)]) {
      const model::LayerHostWeights original = source.load_layer(layer);
      layer_stats.clear();
      io::JsonValue rows = io::JsonValue::array();
      for (size_t i : it->second) {
        const MatrixShape& shape = matrices[i];
        const model::LinearKind kind = linear_kind_of(shape);
        const model::HessianInput input = model::hessian_input(kind);
        if (params.method != algo::LowRankKind::kSvd && !layer_stats.count(input))
          layer_stats.emplace(input, stats(layer, input));
        std::vector<int64_t> ranks(n_cand);
        int64_t kept = 0;
        for (size_t c = 0; c < n_cand; ++c) {
          ranks[c] = algo::compressing_rank(mode, shape, table.candidates[c]);
          if (ranks[c] == 0) ranks[c] = algo::MatrixAllocation::kDense;  // keeps nothing: not a candidate
          kept = std::max(kept, ranks[c]);
        }
        // Factorize once (pitfall 19); every rank does, and all must agree it worked. `kept` is the
        // same on every rank, so skipping a matrix without candidates keeps the collectives aligned.
        std::optional<algo::TruncatableSvd> svd;
        const HostMatrix<float>& w = original[kind];
        if (kept > 0) {
          try {
            const algo::InputStats empty;
            const algo::InputStats& st = params.method == algo::LowRankKind::kSvd ? empty : layer_stats.at(input);
            const algo::InputTransform s = method.input_transform(backend, st, shape.cols, shape.name());
            svd = algo::TruncatableSvd::compute(backend, w.view(), s, kept, params.svd_precision);
          } catch (const NumericError& e) {
            log_warn(shape.name(), ": factorization failed (", e.what(), "); not a candidate of the search");
          }
        }
        const bool ok = kept > 0 && world.all(svd.has_value());
        io::JsonValue ppl = io::JsonValue::array();
        for (size_t c = 0; c < n_cand; ++c) {
          if (ok && ranks[c] != algo::MatrixAllocation::kDense) {
            model::LayerHostWeights modified = original;
            modified[kind] = algo::reconstruct_low_rank(
                backend, algo::low_rank_tensors(svd->factors(ranks[c], params.sigma_fuse)));
            table.at(i, c) = runner.perplexity_with(layer, modified);
          }
          ppl.push_back(number_or_null(table.at(i, c)));
        }
        io::JsonValue row = io::JsonValue::object();
        row.set("matrix", shape.matrix);
        row.set("ppl", ppl);
        rows.push_back(row);
        log_info("sensitivity ", shape.name(), " (", algo::to_string(mode), "): ppl ", ppl.dump(), " (",
                 watch.elapsed_s(), " s)");
      }
      if (files && world.rank() == 0) {
        io::JsonValue payload = io::JsonValue::object();
        payload.set("rows", rows);
        write_sealed(layer_file(options.dir, mode, layer), key, layer, payload);
      }
      if (options.stop_requested && world.any(options.stop_requested())) throw algo::StopRequested();
    }
    runner.advance(layer);
  }
  table.base_ppl = runner.base_perplexity();
  if (files && world.rank() == 0) {
    io::JsonValue payload = io::JsonValue::object();
    payload.set("base_ppl", table.base_ppl);
    write_sealed(base_file(options.dir, mode), key, -1, payload);
  }
  log_info("sensitivity (", algo::to_string(mode), "): ", matrices.size(), " matrices × ", n_cand,
           " ratios, base ppl ", table.base_ppl, ", ", watch.elapsed_s(), " s");
  return table;
}

void ReplacedWeightSource::replace(int64_t layer, model::LinearKind kind, HostMatrix<float> w) {
  const model::LinearShape s = config().linear_shape(kind);
  CALDERA_CHECK(w.rows() == s.out && w.cols() == s.in, "ReplacedWeightSource: layer ", layer, " ",
                model::hf_module_name(kind), " must be ", s.out, "x", s.in, ", got ", w.rows(), "x", w.cols());
  for (auto& r : replacements_)
    if (r.layer == layer && r.kind == kind) {
      r.w = std::move(w);
      return;
    }
  replacements_.push_back({layer, kind, std::move(w)});
}

model::LayerHostWeights ReplacedWeightSource::load_layer(int64_t layer) const {
  model::LayerHostWeights w = base_.load_layer(layer);
  for (const auto& r : replacements_)
    if (r.layer == layer) w[r.kind] = r.w;
  return w;
}

}  // namespace caldera::pipeline
