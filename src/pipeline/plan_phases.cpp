// The per-phase models of the planner (plan_model.h). Each replay below follows the code it names,
// allocation by allocation and scope by scope; O(n) vectors and scalars are left out. When that
// code changes its buffers, the replay changes with it (e2e_plan_memory checks both on the
// bundled models).
#include <algorithm>
#include <map>

#include "comm/partition.h"
#include "core/error.h"
#include "pipeline/plan_model.h"
#include "pipeline/units.h"

namespace caldera::pipeline::detail {
namespace {

using algo::MemorySpace;
using algo::MemoryTally;
using Hold = MemoryTally::Hold;
using linalg::BackendKind;
using model::HessianInput;
using model::LinearKind;

constexpr int64_t kCublasWorkspaceBytes = (int64_t{32} << 20) + 256;  // linalg/cuda: allocated at backend creation
constexpr int64_t kAttentionWorkspaceBytes = int64_t{512} << 20;      // CudaNnKernels
constexpr int64_t kCpuAttentionBlockRows = 64;                        // CpuNnKernels
constexpr int64_t kHdf5SlabElements = int64_t{1} << 20;               // io/hessian_file.cpp
constexpr int64_t kMpiChunkElements = int64_t{1} << 26;               // comm::kDefaultMaxChunkElements

int64_t packed(int64_t n) { return n * (n + 1) / 2; }
bool on_cuda(const PlanInputs& in) { return in.target.backend == BackendKind::kCuda; }

std::vector<MemoryLine> to_lines(const MemoryTally::Breakdown& b) {
  std::vector<MemoryLine> out;
  for (const auto& [label, bytes] : b) out.push_back({label, bytes});
  return out;
}

/// The breakdown that matters on this backend: GPU peak on CUDA, combined peak on CPU.
std::vector<MemoryLine> peak_lines(const PlanInputs& in, const MemoryTally& t) {
  return to_lines(on_cuda(in) ? t.at_backend_peak() : t.at_combined_peak());
}

void set_peaks(RankPhase& r, const algo::MemoryPeaks& p) {
  r.backend_bytes = p.backend;
  r.host_bytes = p.host;
  r.combined_bytes = p.combined;
}

int64_t layer_weight_params(const model::LlamaConfig& c) {
  int64_t n = 2 * c.hidden_size;  // the two norms
  for (LinearKind k : model::kAllLinearKinds) {
    const model::LinearShape s = c.linear_shape(k);
    n += s.out * s.in + (c.has_bias(k) ? s.out : 0);
  }
  return n;
}

int64_t largest_linear_params(const model::LlamaConfig& c) {
  int64_t n = 0;
  for (LinearKind k : model::kAllLinearKinds) n = std::max(n, c.linear_shape(k).out * c.linear_shape(k).in);
  return n;
}

// ---- phase 1 --------------------------------------------------------------------------------

struct HessiansRank {
  RankPhase rank;
  std::vector<MemoryLine> breakdown;
  double compute_s = 0, reduce_s = 0, write_s = 0, read_s = 0, snapshot_s = 0;
};

/// One rank of phase 1 with `seqs` sequences: HessianPhase (taps, ids, reducer), the first
/// run_layer (embedding, weights, forward_layer_batched on the largest micro-batch), reduce_and_write
/// and an activation snapshot when `snapshots`.
HessiansRank replay_hessians(const PlanInputs& in, int64_t seqs, bool writer, bool snapshots) {
  const model::LlamaConfig& c = in.config;
  const BackendKind kind = in.target.backend;
  const bool cuda = on_cuda(in);
  const int world = in.target.world_size();
  const int64_t len = in.forward.seq_len, h = c.hidden_size, tokens = seqs * len;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim(), inter = c.intermediate_size;
  MemoryTally t;
  const Hold cublas = cuda ? t.hold(MemorySpace::kBackend, kCublasWorkspaceBytes, "cuBLAS workspace") : Hold();
  // HessianTaps: four fixed-point accumulators and the per-sequence fp64 scratch.
  std::vector<Hold> taps;
  int64_t max_n = 0, sum_n2 = 0;
  for (HessianInput input : model::kAllHessianInputs) {
    const int64_t n = c.hessian_input_dim(input);
    max_n = std::max(max_n, n);
    sum_n2 += n * n;
    taps.push_back(t.backend(n, n + 1, 16, "Hessian accumulators (fixed point)"));
  }
  const Hold scratch = t.backend(max_n, max_n + 1, 8, "per-sequence fp64 Gram");
  const Hold ids = t.host(tokens, 1, 4, "token ids (int32)");
  Hold hidden;
  if (seqs > 0) {
    hidden = t.backend(tokens, h, 4, "activations");
    {  // embed_sequences: the table (host fp32, then backend) and the ids
      Hold table_host = t.host(c.vocab_size, h, 4, "embedding (fp32 host copy)");
      const Hold table = t.backend(c.vocab_size, h, 4, "embedding table");
      table_host.release();
      const Hold dev_ids = t.backend(1, tokens, 4, "token ids");
    }
    {  // LayerWeights::load: host fp32 copy, file pages of the tensor being read, backend copy
      Hold host_w = t.host(1, layer_weight_params(c), 4, "layer weights (fp32 host copy)");
      t.touch(MemorySpace::kHost, largest_linear_params(c) * in.weight_bytes, "mapped weight pages");
      const Hold w = t.backend(1, layer_weight_params(c) + c.head_dim / 2, 4, "layer weights (fp32)");
      host_w.release();
      // forward_layer on the largest micro-batch, taps on.
      const int64_t tm = std::min(in.forward.micro_batch_seqs, seqs) * len;
      const Hold normed = t.backend(tm, h, 4, "forward temporaries");
      algo::touch_gram_widen(t, kind, len, h);
      {
        const Hold qkv = t.backend(tm, qd + 2 * kvd, 4, "forward temporaries");
        const Hold context = t.backend(tm, qd, 4, "forward temporaries");
        if (cuda) {
          const int64_t pairs = (tm / len) * c.num_attention_heads;
          const int64_t matrix = len * len * 4;
          const int64_t max_pairs = std::clamp<int64_t>(kAttentionWorkspaceBytes / matrix, 1, std::max<int64_t>(pairs, 1));
          t.touch(MemorySpace::kBackend, max_pairs * matrix + 5 * max_pairs * 8, "attention scores");
        } else {
          t.touch(MemorySpace::kHost, std::min(kCpuAttentionBlockRows, len) * len * 4, "attention scores");
        }
        algo::touch_gram_widen(t, kind, len, qd);
      }
      algo::touch_gram_widen(t, kind, len, h);
      const Hold gate_up = t.backend(tm, 2 * inter, 4, "forward temporaries");
      algo::touch_gram_widen(t, kind, len, inter);
    }
  }
  {  // reduce_and_write: per input three fp64 chunks reduced to the writer, which keeps the sums.
    const bool nccl = cuda;  // NCCL on device buffers for CUDA ranks of an MPI world (hessian_reduce.h)
    std::vector<Hold> sums;
    for (HessianInput input : model::kAllHessianInputs) {
      const int64_t n = c.hessian_input_dim(input);
      const Hold chunk = t.backend(n, n, 8, "reduction chunk (fp64)");
      std::vector<Hold> parts;
      for (int k = 0; k < 3; ++k) {
        if (!nccl) {
          Hold full = t.host(n, n, 8, "reduction staging (host fp64)");
          const Hold pk = t.host(packed(n), 1, 8, "reduction staging (host fp64)");
          if (world > 1) t.touch(MemorySpace::kHost, std::min(packed(n), kMpiChunkElements) * 8, "MPI reduce buffer");
          if (writer) parts.push_back(std::move(full));
        } else if (writer) {
          parts.push_back(t.host(n, n, 8, "reduction staging (host fp64)"));
        }
      }
      if (writer) sums.push_back(t.host(n, n, 8, "Hessian sums (fp64, writer)"));
    }
    if (writer)
      for (HessianInput input : model::kAllHessianInputs) {
        const int64_t n = c.hessian_input_dim(input);
        t.touch(MemorySpace::kHost, std::min(packed(n), kHdf5SlabElements + n) * 8, "HDF5 write slab");
      }
  }
  if (snapshots && seqs > 0) t.touch(MemorySpace::kHost, tokens * h * 4, "activation snapshot (host copy)");

  HessiansRank out;
  set_peaks(out.rank, t.peaks());
  out.breakdown = peak_lines(in, t);

  // Time per layer on this rank.
  const ThroughputProfile& tp = in.target.throughput;
  const double layers = static_cast<double>(c.num_hidden_layers);
  const double tok = static_cast<double>(tokens), lp = static_cast<double>(layer_weight_params(c));
  algo::WorkEstimate w;
  w.gemm_flops = 2.0 * tok * lp + 4.0 * tok * static_cast<double>(len) * static_cast<double>(qd);
  w.fp64_flops = tok * static_cast<double>(sum_n2);
  w.memory_bytes = static_cast<double>(seqs) * 48.0 * static_cast<double>(sum_n2) +
                   tok * 4.0 * static_cast<double>(8 * h + 3 * qd + 2 * kvd + 4 * inter);
  out.compute_s = layers * (tp.seconds(w) + 4.0 * lp / tp.host_link_bytes);
  out.read_s = layers * lp * static_cast<double>(in.weight_bytes) / tp.read_bytes;
  out.reduce_s = layers * 3.0 * 8.0 * static_cast<double>(sum_n2) * (1.0 / tp.network_bytes + 1.0 / tp.memory_bytes +
                                                                    (writer || !cuda ? 1.0 / tp.host_link_bytes : 0.0));
  double file = 0;
  for (HessianInput input : model::kAllHessianInputs) file += 8.0 * static_cast<double>(packed(c.hessian_input_dim(input)));
  out.write_s = writer ? layers * 2.0 * file / tp.write_bytes : 0.0;  // write, then read back for the hash
  out.snapshot_s = snapshots ? tok * static_cast<double>(h) * 4.0 / tp.write_bytes : 0.0;  // per snapshot
  return out;
}

// ---- phase 2 --------------------------------------------------------------------------------

struct ShapeKey {
  int64_t m, n;
  bool operator<(const ShapeKey& o) const { return m != o.m ? m < o.m : n < o.n; }
};

}  // namespace

int64_t rank_sequences(int64_t n_sequences, int64_t micro_batch, int world_size, int rank) {
  const int64_t groups = (n_sequences + micro_batch - 1) / micro_batch;
  const comm::IndexRange g = comm::partition_range(groups, world_size, rank);
  return std::min(g.end * micro_batch, n_sequences) - std::min(g.begin * micro_batch, n_sequences);
}

PhasePlan plan_hessians(const PlanInputs& in) {
  const int world = in.target.world_size();
  PhasePlan plan;
  plan.phase = PlanPhase::kHessians;
  plan.ranks.resize(static_cast<size_t>(world));
  const double layers = static_cast<double>(in.config.num_hidden_layers);
  // Snapshots happen after a layer when --snapshot-interval seconds passed since the last one:
  // their number follows from the phase's time without them.
  auto replay_all = [&](bool snapshots) {
    std::map<std::pair<int64_t, bool>, HessiansRank> memo;  // ranks with equal work are alike
    std::vector<const HessiansRank*> per_rank(static_cast<size_t>(world));
    for (int r = 0; r < world; ++r) {
      const int64_t seqs = rank_sequences(in.calib_sequences, in.forward.micro_batch_seqs, world, r);
      const auto key = std::make_pair(seqs, r == 0);
      auto it = memo.find(key);
      if (it == memo.end()) it = memo.emplace(key, replay_hessians(in, seqs, r == 0, snapshots)).first;
      per_rank[static_cast<size_t>(r)] = &it->second;
    }
    return std::make_pair(std::move(memo), per_rank);
  };
  auto [memo0, ranks0] = replay_all(false);
  double slowest_compute = 0;
  for (const HessiansRank* r : ranks0) slowest_compute = std::max(slowest_compute, r->compute_s + r->read_s);
  const HessiansRank& root0 = *ranks0[0];
  const double base_s = slowest_compute + root0.reduce_s + root0.write_s;
  int64_t snapshots = 0;
  if (layers > 1) {
    if (in.snapshot_interval_s <= 0) snapshots = static_cast<int64_t>(layers) - 1;
    else snapshots = std::min<int64_t>(static_cast<int64_t>(layers) - 1, static_cast<int64_t>(base_s / in.snapshot_interval_s));
  }
  auto [memo, ranks] = replay_all(snapshots > 0);
  double slowest_snapshot = 0;
  for (int r = 0; r < world; ++r) {
    const HessiansRank& hr = *ranks[static_cast<size_t>(r)];
    RankPhase& out = plan.ranks[static_cast<size_t>(r)];
    out = hr.rank;
    slowest_snapshot = std::max(slowest_snapshot, hr.snapshot_s);
  }
  const double snapshot_s = static_cast<double>(snapshots) * slowest_snapshot;
  plan.seconds = base_s + snapshot_s;
  for (RankPhase& r : plan.ranks) r.seconds = plan.seconds;  // ranks meet in every layer's reduction
  plan.seconds_by_part = {{"forward + Hessian taps (slowest rank)", slowest_compute},
                          {"reduction over ranks", root0.reduce_s},
                          {"Hessian files (rank 0)", root0.write_s},
                          {"activation snapshots", snapshot_s}};
  plan.breakdown = ranks[0]->breakdown;
  const int64_t s0 = rank_sequences(in.calib_sequences, in.forward.micro_batch_seqs, world, 0);
  plan.notes.push_back(caldera::detail::concat("rank 0 forwards ", s0, " of ", in.calib_sequences, " sequences (",
                                      s0 * in.forward.seq_len, " tokens) through each of ", in.config.num_hidden_layers,
                                      " layers; ", snapshots, " activation snapshot(s) expected"));
  return plan;
}

PhasePlan plan_compress(const PlanInputs& in) {
  const algo::Method& method = *in.method;
  const int world = in.target.world_size();
  const BackendKind kind = in.target.backend;
  const ThroughputProfile& tp = in.target.throughput;
  const std::vector<Unit> units = enumerate_units(in.config);
  std::vector<double> costs;
  costs.reserve(units.size());
  for (const Unit& u : units) costs.push_back(method.cost_estimate(u.shape.out, u.shape.in));
  const comm::Schedule schedule = comm::schedule_largest_first(costs, world);
  std::map<ShapeKey, algo::UnitEstimate> estimates;
  for (const Unit& u : units) {
    const ShapeKey key{u.shape.out, u.shape.in};
    if (!estimates.count(key)) estimates.emplace(key, method.estimate(u.shape.out, u.shape.in, kind));
  }

  PhasePlan plan;
  plan.phase = PlanPhase::kCompress;
  plan.ranks.resize(static_cast<size_t>(world));
  std::map<std::vector<int64_t>, std::pair<RankPhase, std::vector<MemoryLine>>> memo;  // by the list of shapes
  double slowest = 0, slowest_io = 0;
  int slowest_rank = 0;
  std::vector<MemoryLine> rank0_lines;
  for (int r = 0; r < world; ++r) {
    const auto& mine = schedule.units[static_cast<size_t>(r)];
    double compute_s = 0, io_s = 0;
    std::vector<int64_t> signature;
    for (int64_t idx : mine) {
      const Unit& u = units[static_cast<size_t>(idx)];
      const algo::UnitEstimate& e = estimates.at({u.shape.out, u.shape.in});
      const double m = static_cast<double>(u.shape.out), n = static_cast<double>(u.shape.in);
      compute_s += tp.seconds(e.work) + (4.0 * m * n + 4.0 * n * n) / tp.host_link_bytes;
      io_s += (m * n * static_cast<double>(in.weight_bytes) + 8.0 * static_cast<double>(packed(u.shape.in))) / tp.read_bytes +
              static_cast<double>(e.checkpoint_bytes * e.checkpoints + e.result_bytes) / tp.write_bytes;
      signature.push_back(u.shape.out);
      signature.push_back(u.shape.in);
      signature.push_back(u.id.layer * 4 + static_cast<int>(model::hessian_input(u.kind)));
    }
    RankPhase& out = plan.ranks[static_cast<size_t>(r)];
    // Memory depends on the shapes in order and on which consecutive units share a Hessian input.
    std::vector<int64_t> shape_sig;
    for (size_t i = 0; i < signature.size(); i += 3) {
      shape_sig.push_back(signature[i]);
      shape_sig.push_back(signature[i + 1]);
      shape_sig.push_back(i >= 3 && signature[i + 2] == signature[i - 1] ? 1 : 0);
    }
    auto it = memo.find(shape_sig);
    if (it == memo.end()) {
      MemoryTally t;
      const Hold cublas =
          kind == BackendKind::kCuda ? t.hold(MemorySpace::kBackend, kCublasWorkspaceBytes, "cuBLAS workspace") : Hold();
      Hold stats;
      for (size_t i = 0; i < shape_sig.size(); i += 3) {
        const int64_t m = shape_sig[i], n = shape_sig[i + 1];
        const bool cached = shape_sig[i + 2] != 0;
        const algo::UnitEstimate& e = estimates.at({m, n});
        const Hold w = t.host(m, n, 4, "W (fp32 host)");
        t.touch(MemorySpace::kHost, m * n * in.weight_bytes, "mapped weight pages");
        if (!cached) {  // StatsCache::get: the new statistics are read while the old ones live
          Hold fresh = t.host(n, n, 8, "Hessian statistics (fp64)");
          t.touch(MemorySpace::kHost, std::min(packed(n), kHdf5SlabElements) * 8, "HDF5 read slab");
          stats = std::move(fresh);
        }
        t.nest(e.memory, method.name() + " working set (compress)");
        const Hold result = t.host(1, e.result_bytes, 1, "unit tensors");
        t.touch(MemorySpace::kHost, e.result_bytes, "HDF5 write copy");
      }
      RankPhase rp;
      set_peaks(rp, t.peaks());
      it = memo.emplace(shape_sig, std::make_pair(rp, peak_lines(in, t))).first;
    }
    out = it->second.first;
    if (r == 0) rank0_lines = it->second.second;
    out.seconds = compute_s + io_s;
    out.active = !mine.empty();
    if (out.seconds > slowest) {
      slowest = out.seconds;
      slowest_io = io_s;
      slowest_rank = r;
    }
  }
  plan.seconds = slowest;
  plan.seconds_by_part = {{caldera::detail::concat("compute (rank ", slowest_rank, ")"), slowest - slowest_io},
                          {caldera::detail::concat("weights, Hessians, checkpoints (rank ", slowest_rank, ")"), slowest_io}};
  plan.breakdown = rank0_lines;
  const algo::UnitEstimate* any = estimates.empty() ? nullptr : &estimates.begin()->second;
  if (any != nullptr && !any->modeled)
    plan.notes.push_back("method " + method.name() +
                         " has no memory model of its own (Method::estimate): a generic estimate is used");
  plan.notes.push_back(caldera::detail::concat(units.size(), " units over ", world, " rank(s); predicted balance ",
                                      static_cast<int>(100.0 * comm::schedule_efficiency(schedule.loads)), "%"));
  if (method.has_update_pass())
    plan.notes.push_back("not modeled: the update pass after phase 2 (--update local): per layer a forward with "
                         "taps, the layer's refits and one more forward (2x phase 1's time on minillama-tiny), "
                         "phase 1's memory plus one micro-batch of activations");
  return plan;
}

PhasePlan plan_export(const PlanInputs& in) {
  const algo::Method& method = *in.method;
  const model::LlamaConfig& c = in.config;
  const ThroughputProfile& tp = in.target.throughput;
  const std::vector<Unit> units = enumerate_units(c);
  std::map<ShapeKey, int64_t> result_bytes;
  int64_t largest_result = 0, total_result = 0;
  for (const Unit& u : units) {
    const ShapeKey key{u.shape.out, u.shape.in};
    if (!result_bytes.count(key))
      result_bytes[key] = method.estimate(u.shape.out, u.shape.in, in.target.backend).result_bytes;
    largest_result = std::max(largest_result, result_bytes[key]);
    total_result += result_bytes[key];
  }
  // Tensors copied unchanged: embedding, lm_head unless tied, norms, biases.
  int64_t untouched = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) +
                      c.hidden_size * (2 * c.num_hidden_layers + 1);
  for (LinearKind k : model::kAllLinearKinds)
    if (c.has_bias(k)) untouched += c.linear_shape(k).out * c.num_hidden_layers;
  untouched *= in.weight_bytes;
  const int64_t largest_tensor = std::max(c.vocab_size * c.hidden_size * in.weight_bytes, largest_result);

  MemoryTally t;
  {  // the summary pass: units read one at a time (the next is read while the last is kept)
    const Hold current = t.host(1, largest_result, 1, "unit tensors (reader)");
    t.touch(MemorySpace::kHost, 2 * largest_result, "unit tensors (reader)");
  }
  {  // the shards: mapped pages of the copied tensors stay resident, one buffer of the largest tensor
    const Hold mapped = t.host(1, untouched, 1, "mapped pages of copied tensors");
    const Hold buffer = t.host(1, largest_tensor, 1, "safetensors write buffer");
    const Hold current = t.host(1, largest_result, 1, "unit tensors (reader)");
    t.touch(MemorySpace::kHost, 2 * largest_result, "unit tensors (reader)");
  }
  PhasePlan plan;
  plan.phase = PlanPhase::kExport;
  plan.ranks.resize(static_cast<size_t>(in.target.world_size()));
  for (size_t r = 1; r < plan.ranks.size(); ++r) plan.ranks[r].active = false;
  set_peaks(plan.ranks[0], t.peaks());
  plan.breakdown = to_lines(t.at_combined_peak());
  const double read_s = (2.0 * static_cast<double>(total_result) + static_cast<double>(untouched)) / tp.read_bytes;
  const double out_bytes = static_cast<double>(total_result + untouched);
  const double write_s = out_bytes / tp.write_bytes + out_bytes / tp.read_bytes;  // written, then hashed
  plan.seconds = read_s + write_s;
  plan.ranks[0].seconds = plan.seconds;
  plan.seconds_by_part = {{"read task files and copied tensors", read_s}, {"write and hash output/", write_s}};
  plan.notes.push_back(caldera::detail::concat("output/ about ", format_bytes(static_cast<int64_t>(out_bytes)), " in shards of at most ",
                                      format_bytes(in.max_shard_bytes), " (rank 0 writes; the others wait)"));
  return plan;
}

}  // namespace caldera::pipeline::detail
