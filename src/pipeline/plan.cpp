#include "pipeline/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "caldera/config.h"
#include "core/error.h"
#include "pipeline/plan_model.h"

namespace caldera::pipeline {

int64_t process_baseline_bytes(linalg::BackendKind backend) {
  if (backend == linalg::BackendKind::kCuda) return kCudaProcessBaselineBytes;
  return kCpuProcessBaselineBytes + (CALDERA_WITH_CUDA ? kCudaLibrariesHostBytes : 0);
}
namespace {

using linalg::BackendKind;

constexpr int kMaxNodesSearched = 1 << 14;

/// The model of one phase (plan_model.h).
PhasePlan plan_one_phase(const PlanInputs& in, PlanPhase phase) {
  switch (phase) {
    case PlanPhase::kHessians: return detail::plan_hessians(in);
    case PlanPhase::kCompress: return detail::plan_compress(in);
    case PlanPhase::kExport: break;
  }
  return detail::plan_export(in);
}

/// A plan with its inputs and per-process host terms, no phase computed yet.
Plan plan_without_phases(const PlanInputs& in) {
  Plan p;
  p.inputs = in;
  p.host_resident_bytes = in.calib_sequences * in.forward.seq_len * 4;
  p.host_baseline_bytes = process_baseline_bytes(in.target.backend);
  return p;
}

/// A plan with only `phase` computed (the others empty): what the searches below re-plan.
Plan plan_phase_only(const PlanInputs& in, PlanPhase phase) {
  Plan p = plan_without_phases(in);
  p.phases[static_cast<size_t>(phase)] = plan_one_phase(in, phase);
  return p;
}

struct Shortfall {
  PlanPhase phase;
  bool gpu = false;  ///< GPU memory of a rank (else host memory of a node)
  int where = 0;     ///< rank (gpu) or node (host)
  int64_t need = 0;
  int64_t usable = 0;
};

/// The worst GPU and host shortfalls of `phase` (at most one of each).
std::vector<Shortfall> shortfalls(const Plan& p, PlanPhase phase) {
  std::vector<Shortfall> out;
  const PhasePlan& ph = p.phase(phase);
  if (ph.ranks.empty()) return out;
  if (p.inputs.target.backend == BackendKind::kCuda) {
    Shortfall worst{phase, true, 0, 0, p.gpu_usable_bytes()};
    for (int r = 0; r < static_cast<int>(ph.ranks.size()); ++r)
      if (p.gpu_need(phase, r) > worst.need) worst = {phase, true, r, p.gpu_need(phase, r), worst.usable};
    if (worst.need > worst.usable) out.push_back(worst);
  }
  Shortfall worst{phase, false, 0, 0, p.host_usable_bytes()};
  for (int node = 0; node < p.inputs.target.nodes; ++node)
    if (p.node_host_need(phase, node) > worst.need) worst = {phase, false, node, p.node_host_need(phase, node), worst.usable};
  if (worst.need > worst.usable) out.push_back(worst);
  return out;
}

bool phase_fits(const PlanInputs& in, PlanPhase phase) {
  return shortfalls(plan_phase_only(in, phase), phase).empty();
}

std::string gib(int64_t bytes) { return format_bytes(bytes); }

/// What to change so that `phase` fits (each suggestion checked by re-planning).
std::vector<std::string> suggestions(const PlanInputs& in, PlanPhase phase, bool gpu, int64_t need) {
  std::vector<std::string> out;
  const PlanTarget& t = in.target;
  if (phase == PlanPhase::kHessians) {
    // More ranks: each holds fewer sequences' activations.
    for (int nodes = t.nodes + 1; nodes <= kMaxNodesSearched; nodes = nodes < 16 ? nodes + 1 : nodes * 2) {
      PlanInputs m = in;
      m.target.nodes = nodes;
      if (phase_fits(m, phase)) {
        int lo = std::max(t.nodes + 1, nodes < 16 ? nodes : nodes / 2 + 1), hi = nodes;
        while (lo < hi) {  // smallest node count that fits
          const int mid = lo + (hi - lo) / 2;
          m.target.nodes = mid;
          if (phase_fits(m, phase)) hi = mid; else lo = mid + 1;
        }
        out.push_back(caldera::detail::concat("more ranks: at least ", lo, " nodes of ", t.ranks_per_node, " (",
                                              lo * t.ranks_per_node, " ranks; --nodes ", lo, ")"));
        break;
      }
    }
    // Fewer calibration sequences.
    if (in.calib_sequences > 1) {
      PlanInputs m = in;
      int64_t lo = 0, hi = in.calib_sequences - 1;  // largest count that fits, 0 = none
      while (lo < hi) {
        const int64_t mid = lo + (hi - lo + 1) / 2;
        m.calib_sequences = mid;
        if (phase_fits(m, phase)) lo = mid; else hi = mid - 1;
      }
      if (lo > 0)
        out.push_back(caldera::detail::concat("fewer calibration sequences: at most ", lo, " of ", in.calib_sequences,
                                              " (--max-calib-seqs ", lo, ")"));
    }
    // Smaller micro-batches: fewer forward temporaries.
    for (int64_t mb = in.forward.micro_batch_seqs / 2; mb >= 1; mb /= 2) {
      PlanInputs m = in;
      m.forward.micro_batch_seqs = mb;
      if (phase_fits(m, phase)) {
        out.push_back(caldera::detail::concat("a smaller micro-batch: --micro-batch ", mb));
        break;
      }
    }
  }
  if (gpu) {
    const int64_t needed = static_cast<int64_t>(std::ceil(static_cast<double>(need) / (1.0 - kPlanMemoryMargin)));
    std::string s = "a bigger GPU: at least " + gib(needed) + " per GPU";
    if (needed <= gpu_memory_bytes(GpuModel::kH200) && t.gpu_memory_bytes < gpu_memory_bytes(GpuModel::kH200))
      s += " (h200: " + gib(gpu_memory_bytes(GpuModel::kH200)) + ")";
    if (phase == PlanPhase::kCompress) s = "phase 2 holds one matrix at a time, so more ranks do not help; " + s;
    out.push_back(s);
  } else {
    for (int rpn = t.ranks_per_node - 1; rpn >= 1; --rpn) {
      PlanInputs m = in;
      m.target.ranks_per_node = rpn;
      m.target.nodes = (t.world_size() + rpn - 1) / rpn;
      if (phase_fits(m, phase)) {
        out.push_back(caldera::detail::concat("fewer ranks per node: --ranks-per-node ", rpn, " --nodes ", m.target.nodes,
                                              " (about the same number of ranks)"));
        break;
      }
    }
    const int64_t needed = static_cast<int64_t>(std::ceil(static_cast<double>(need) / (1.0 - kPlanMemoryMargin)));
    out.push_back("nodes with more memory: at least " + gib(needed) + " per node (--host-memory-gb)");
  }
  return out;
}

std::string phase_title(PlanPhase p) {
  switch (p) {
    case PlanPhase::kHessians: return "phase 1 (hessians)";
    case PlanPhase::kCompress: return "phase 2 (compress)";
    case PlanPhase::kExport: return "phase 3 (export)";
  }
  return "?";
}

}  // namespace

std::string_view to_string(PlanPhase phase) noexcept {
  switch (phase) {
    case PlanPhase::kHessians: return "hessians";
    case PlanPhase::kCompress: return "compress";
    case PlanPhase::kExport: return "export";
  }
  return "?";
}

void PlanInputs::validate() const {
  std::string problems;
  auto add = [&](auto&&... parts) { problems += "\n  " + caldera::detail::concat(parts...); };
  try {
    config.validate();
  } catch (const ConfigError& e) {
    add("model config: ", e.what());
  }
  try {
    forward.validate();
  } catch (const ConfigError& e) {
    add(e.what());
  }
  if (calib_sequences <= 0) add("the calibration has no sequences (--calib FILE or --calib-seqs N)");
  if (method == nullptr) add("no method");
  if (weight_bytes <= 0) add("weight bytes must be positive, got ", weight_bytes);
  if (max_shard_bytes <= 0) add("--max-shard-gb must be positive");
  if (target.nodes < 1) add("--nodes must be >= 1, got ", target.nodes);
  if (target.ranks_per_node < 1) add("--ranks-per-node must be >= 1, got ", target.ranks_per_node);
  if (target.host_memory_bytes <= 0) add("--host-memory-gb must be positive (memory per node)");
  if (target.backend == BackendKind::kCuda && target.gpu_memory_bytes <= 0)
    add("--gpu-memory-gb must be positive for a CUDA plan");
  if (!(snapshot_interval_s >= 0)) add("--snapshot-interval must be >= 0");
  if (!problems.empty()) raise<ConfigError>("plan: invalid inputs:", problems);
}

int64_t Plan::gpu_need(PlanPhase phase, int rank) const {
  if (inputs.target.backend != BackendKind::kCuda) return 0;
  const RankPhase& r = this->phase(phase).ranks.at(static_cast<size_t>(rank));
  return r.backend_bytes + kCudaContextBytes;
}

int64_t allocator_slack_bytes(int64_t work_bytes) noexcept {
  const auto slack = static_cast<int64_t>(kAllocatorSlackFraction * static_cast<double>(std::max<int64_t>(work_bytes, 0)));
  return std::min(slack, kAllocatorSlackCapBytes);
}

int64_t Plan::host_phase_bytes(PlanPhase phase, int rank) const {
  const RankPhase& r = this->phase(phase).ranks.at(static_cast<size_t>(rank));
  if (!r.active) return 0;
  const int64_t work = inputs.target.backend == BackendKind::kCuda ? r.host_bytes : r.combined_bytes;
  return work + allocator_slack_bytes(work) + kRuntimeBufferBytes;
}

int64_t Plan::host_need(PlanPhase phase, int rank) const {
  return host_baseline_bytes + host_resident_bytes + host_phase_bytes(phase, rank);
}

int64_t Plan::node_host_need(PlanPhase phase, int node) const {
  const int rpn = inputs.target.ranks_per_node;
  int64_t total = 0;
  for (int r = node * rpn; r < (node + 1) * rpn && r < inputs.target.world_size(); ++r) total += host_need(phase, r);
  return total;
}

int64_t Plan::gpu_usable_bytes() const {
  return static_cast<int64_t>(static_cast<double>(inputs.target.gpu_memory_bytes) * (1.0 - kPlanMemoryMargin));
}
int64_t Plan::host_usable_bytes() const {
  return static_cast<int64_t>(static_cast<double>(inputs.target.host_memory_bytes) * (1.0 - kPlanMemoryMargin));
}

double Plan::total_seconds() const {
  double s = 0;
  for (const PhasePlan& p : phases) s += p.seconds;
  return s;
}

Plan make_plan(const PlanInputs& inputs) {
  inputs.validate();
  Plan p = plan_without_phases(inputs);
  for (PlanPhase phase : kAllPlanPhases) p.phases[static_cast<size_t>(phase)] = plan_one_phase(inputs, phase);
  p.assumptions = {
      caldera::detail::concat("memory kept free: ", static_cast<int>(100 * kPlanMemoryMargin),
                              "% of every GPU and node (fragmentation, library workspaces, other processes)"),
      "GPU memory outside the backend per rank: " + format_bytes(kCudaContextBytes) +
          " (CUDA context, kernel images, cuBLAS/cuSOLVER handles, NCCL buffers)",
      "host memory per rank before any phase: " + format_bytes(p.host_baseline_bytes) +
          " (libraries; on CUDA the runtime's host allocations) + the calibration tokens",
      caldera::detail::concat("host memory per phase besides its buffers: the allocator's slack, ",
                              static_cast<int>(100 * kAllocatorSlackFraction), "% of the phase's live peak (at most ",
                              format_bytes(kAllocatorSlackCapBytes), "), and ", format_bytes(kRuntimeBufferBytes),
                              " (BLAS packing, HDF5 caches, MPI buffers); measured on minillama-tiny and -small"),
      "ranks are placed in blocks: ranks 0.." + std::to_string(inputs.target.ranks_per_node - 1) +
          " on node 0 (srun's default); rank 0 writes the Hessian files and output/",
      std::string("phase-1 sums are reduced ") +
          (inputs.target.backend == BackendKind::kCuda ? "with NCCL on device buffers (rank 0 stages them on the host)"
                                                       : "with MPI through host buffers on every rank"),
      "phase 2 follows the run's schedule (largest cost first, Method::cost_estimate); phase 3 writes the "
      "compressed format",
      "times = operations / the throughput figures below, plus file and network I/O; ranks of phase 1 meet in "
      "every layer's reduction",
  };
  for (const std::string& s : inputs.target.throughput.sources) p.assumptions.push_back("throughput: " + s);
  return p;
}

std::optional<std::string> plan_refusal(const Plan& plan) {
  std::ostringstream os;
  bool any = false;
  for (PlanPhase phase : kAllPlanPhases) {
    for (const Shortfall& s : shortfalls(plan, phase)) {
      if (!any)
        os << "the plan does not fit (" << static_cast<int>(100 * kPlanMemoryMargin)
           << "% of the memory is kept free):";
      any = true;
      const PlanTarget& t = plan.inputs.target;
      if (s.gpu)
        os << "\n  " << phase_title(phase) << ", rank " << s.where << ": needs " << format_bytes(s.need)
           << " of GPU memory, " << format_bytes(s.usable) << " usable (" << t.gpu_name << ", "
           << format_bytes(t.gpu_memory_bytes) << ")";
      else
        os << "\n  " << phase_title(phase) << ", node " << s.where << " (ranks " << s.where * t.ranks_per_node << ".."
           << std::min(t.world_size(), (s.where + 1) * t.ranks_per_node) - 1 << "): needs " << format_bytes(s.need)
           << " of host memory, " << format_bytes(s.usable) << " usable (" << format_bytes(t.host_memory_bytes)
           << " per node)";
      const std::vector<std::string> fixes = suggestions(plan.inputs, phase, s.gpu, s.need);
      if (!fixes.empty()) {
        os << "\n    what to change (any one):";
        for (const std::string& f : fixes) os << "\n      - " << f;
      }
    }
  }
  if (!any) return std::nullopt;
  return os.str();
}

void check_plan_fits(const Plan& plan) {
  if (auto refusal = plan_refusal(plan)) throw ConfigError(*refusal);
}

PlanTarget current_target(comm::Communicator& world, const linalg::Backend& backend, ThroughputProfile throughput) {
  PlanTarget t;
  t.backend = backend.kind();
  const std::vector<std::string> hosts = world.allgather_strings(world.host_name());
  const std::set<std::string> distinct(hosts.begin(), hosts.end());
  t.nodes = static_cast<int>(distinct.size());
  t.ranks_per_node = (world.size() + t.nodes - 1) / t.nodes;
  t.host_memory_bytes = machine_memory_bytes();
  if (t.backend == BackendKind::kCuda) {
    t.gpu_memory_bytes = static_cast<int64_t>(backend.memory_stats().device_total_bytes);
    t.gpu_name = backend.description();
  }
  t.throughput = std::move(throughput);
  return t;
}

int64_t machine_memory_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  long long kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "MemTotal: %lld kB", &kb) == 1) break;
  std::fclose(f);
  return static_cast<int64_t>(kb) * 1024;
}

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  char buf[32];
  if (std::abs(b) >= 1099511627776.0) std::snprintf(buf, sizeof buf, "%.2f TiB", b / 1099511627776.0);
  else if (std::abs(b) >= 1073741824.0) std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  else if (std::abs(b) >= 1048576.0) std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  else if (std::abs(b) >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  return buf;
}

}  // namespace caldera::pipeline
