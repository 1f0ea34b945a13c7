// plan_to_json and plan_to_text (pipeline/plan.h).
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "pipeline/plan.h"
#include "pipeline/progress.h"

namespace caldera::pipeline {
namespace {

using linalg::BackendKind;

io::JsonValue lines_json(const std::vector<MemoryLine>& lines) {
  io::JsonValue a = io::JsonValue::array();
  for (const MemoryLine& l : lines) {
    io::JsonValue e = io::JsonValue::object();
    e.set("label", l.label);
    e.set("bytes", l.bytes);
    a.push_back(e);
  }
  return a;
}

/// Index of the rank with the largest value of `f` (first on ties).
template <class F>
int argmax_rank(const PhasePlan& p, F f) {
  int best = 0;
  for (int r = 1; r < static_cast<int>(p.ranks.size()); ++r)
    if (f(r) > f(best)) best = r;
  return best;
}

std::string duration(double s) { return ProgressBar::format_duration(s); }

}  // namespace

io::JsonValue plan_to_json(const Plan& plan) {
  const PlanInputs& in = plan.inputs;
  const PlanTarget& t = in.target;
  const bool cuda = t.backend == BackendKind::kCuda;
  io::JsonValue j = io::JsonValue::object();

  io::JsonValue model = io::JsonValue::object();
  model.set("model_type", std::string(model::to_string(in.config.model_type)));
  model.set("layers", in.config.num_hidden_layers);
  model.set("hidden_size", in.config.hidden_size);
  model.set("intermediate_size", in.config.intermediate_size);
  model.set("attention_heads", in.config.num_attention_heads);
  model.set("kv_heads", in.config.num_key_value_heads);
  model.set("vocab_size", in.config.vocab_size);
  model.set("parameters", in.config.num_parameters());
  model.set("weight_bytes", in.weight_bytes);
  j.set("model", model);

  io::JsonValue cal = io::JsonValue::object();
  cal.set("sequences", in.calib_sequences);
  cal.set("seq_len", in.forward.seq_len);
  cal.set("tokens", in.calib_sequences * in.forward.seq_len);
  cal.set("micro_batch", in.forward.micro_batch_seqs);
  j.set("calibration", cal);

  io::JsonValue method = io::JsonValue::object();
  method.set("name", in.method->name());
  io::JsonValue params = io::JsonValue::object();
  for (const auto& [k, v] : in.method->parameters()) params.set(k, v);
  method.set("parameters", params);
  j.set("method", method);

  io::JsonValue target = io::JsonValue::object();
  target.set("backend", std::string(linalg::to_string(t.backend)));
  target.set("nodes", t.nodes);
  target.set("ranks_per_node", t.ranks_per_node);
  target.set("world_size", t.world_size());
  target.set("gpu", cuda ? io::JsonValue(t.gpu_name) : io::JsonValue());
  target.set("gpu_memory_bytes", t.gpu_memory_bytes);
  target.set("host_memory_bytes", t.host_memory_bytes);
  target.set("throughput", t.throughput.name);
  j.set("target", target);

  j.set("memory_margin", kPlanMemoryMargin);
  j.set("gpu_usable_bytes", plan.gpu_usable_bytes());
  j.set("host_usable_bytes", plan.host_usable_bytes());
  j.set("cuda_context_bytes", cuda ? kCudaContextBytes : int64_t{0});
  j.set("host_baseline_bytes", plan.host_baseline_bytes);
  j.set("host_resident_bytes", plan.host_resident_bytes);
  j.set("runtime_buffer_bytes", kRuntimeBufferBytes);
  j.set("allocator_slack_fraction", kAllocatorSlackFraction);
  j.set("allocator_slack_cap_bytes", kAllocatorSlackCapBytes);

  io::JsonValue phases = io::JsonValue::array();
  for (PlanPhase phase : kAllPlanPhases) {
    const PhasePlan& p = plan.phase(phase);
    io::JsonValue pj = io::JsonValue::object();
    pj.set("phase", std::string(to_string(phase)));
    pj.set("seconds", p.seconds);
    io::JsonValue parts = io::JsonValue::object();
    for (const auto& [k, v] : p.seconds_by_part) parts.set(k, v);
    pj.set("seconds_by_part", parts);
    io::JsonValue ranks = io::JsonValue::array();
    for (int r = 0; r < static_cast<int>(p.ranks.size()); ++r) {
      const RankPhase& rp = p.ranks[static_cast<size_t>(r)];
      io::JsonValue rj = io::JsonValue::object();
      rj.set("rank", r);
      rj.set("node", r / t.ranks_per_node);
      rj.set("active", rp.active);
      rj.set("backend_bytes", rp.backend_bytes);
      rj.set("host_bytes", rp.host_bytes);
      rj.set("combined_bytes", rp.combined_bytes);
      // What the phase adds to the rank's resident set (phase_memory's host_work_bytes).
      rj.set("host_phase_bytes", plan.host_phase_bytes(phase, r));
      rj.set("gpu_need_bytes", plan.gpu_need(phase, r));
      rj.set("host_need_bytes", plan.host_need(phase, r));
      rj.set("seconds", rp.seconds);
      ranks.push_back(rj);
    }
    pj.set("ranks", ranks);
    io::JsonValue nodes = io::JsonValue::array();
    for (int node = 0; node < t.nodes; ++node) {
      io::JsonValue nj = io::JsonValue::object();
      nj.set("node", node);
      nj.set("host_need_bytes", plan.node_host_need(phase, node));
      nodes.push_back(nj);
    }
    pj.set("nodes", nodes);
    pj.set("breakdown_rank0", lines_json(p.breakdown));
    io::JsonValue notes = io::JsonValue::array();
    for (const std::string& n : p.notes) notes.push_back(n);
    pj.set("notes", notes);
    phases.push_back(pj);
  }
  j.set("phases", phases);
  j.set("total_seconds", plan.total_seconds());
  io::JsonValue assumptions = io::JsonValue::array();
  for (const std::string& a : plan.assumptions) assumptions.push_back(a);
  j.set("assumptions", assumptions);
  const auto refusal = plan_refusal(plan);
  j.set("fits", !refusal.has_value());
  j.set("refusal", refusal ? io::JsonValue(*refusal) : io::JsonValue());
  return j;
}

std::string plan_to_text(const Plan& plan) {
  const PlanInputs& in = plan.inputs;
  const PlanTarget& t = in.target;
  const bool cuda = t.backend == BackendKind::kCuda;
  std::ostringstream os;
  char buf[512];
  std::snprintf(buf, sizeof buf, "model      %s, %lld layers, hidden %lld, intermediate %lld, heads %lld/%lld, vocab %lld (%.2f B parameters)\n",
                std::string(model::to_string(in.config.model_type)).c_str(), static_cast<long long>(in.config.num_hidden_layers),
                static_cast<long long>(in.config.hidden_size), static_cast<long long>(in.config.intermediate_size),
                static_cast<long long>(in.config.num_attention_heads), static_cast<long long>(in.config.num_key_value_heads),
                static_cast<long long>(in.config.vocab_size), static_cast<double>(in.config.num_parameters()) / 1e9);
  os << buf;
  os << "calib      " << in.calib_sequences << " sequences x " << in.forward.seq_len << " tokens, micro-batch "
     << in.forward.micro_batch_seqs << "\n";
  os << "method     " << in.method->name();
  for (const auto& [k, v] : in.method->parameters()) os << " " << k << "=" << v;
  os << "\n";
  os << "target     " << t.nodes << " node(s) x " << t.ranks_per_node << " rank(s) = " << t.world_size() << ", backend "
     << linalg::to_string(t.backend);
  if (cuda) os << ", " << t.gpu_name << " " << format_bytes(t.gpu_memory_bytes) << " per GPU (" << format_bytes(plan.gpu_usable_bytes()) << " usable)";
  os << ", " << format_bytes(t.host_memory_bytes) << " per node (" << format_bytes(plan.host_usable_bytes()) << " usable)\n\n";

  std::snprintf(buf, sizeof buf, "%-10s %-22s %-22s %-22s %10s\n", "phase", cuda ? "GPU per rank (max)" : "-",
                "host per rank (max)", "host per node (max)", "time");
  os << buf;
  for (PlanPhase phase : kAllPlanPhases) {
    const PhasePlan& p = plan.phase(phase);
    const int gr = argmax_rank(p, [&](int r) { return plan.gpu_need(phase, r); });
    const int hr = argmax_rank(p, [&](int r) { return plan.host_need(phase, r); });
    int node = 0;
    for (int n = 1; n < t.nodes; ++n)
      if (plan.node_host_need(phase, n) > plan.node_host_need(phase, node)) node = n;
    const std::string g = cuda ? format_bytes(plan.gpu_need(phase, gr)) + " (rank " + std::to_string(gr) + ")" : "-";
    const std::string h = format_bytes(plan.host_need(phase, hr)) + " (rank " + std::to_string(hr) + ")";
    const std::string nd = format_bytes(plan.node_host_need(phase, node)) + " (node " + std::to_string(node) + ")";
    std::snprintf(buf, sizeof buf, "%-10s %-22s %-22s %-22s %10s\n", std::string(to_string(phase)).c_str(), g.c_str(),
                  h.c_str(), nd.c_str(), duration(p.seconds).c_str());
    os << buf;
  }
  std::snprintf(buf, sizeof buf, "%-10s %-22s %-22s %-22s %10s\n", "total", "", "", "", duration(plan.total_seconds()).c_str());
  os << buf;

  for (PlanPhase phase : kAllPlanPhases) {
    const PhasePlan& p = plan.phase(phase);
    os << "\n" << to_string(phase) << ": rank 0 at its " << (cuda ? "GPU" : "memory") << " peak ("
       << format_bytes(cuda ? p.ranks[0].backend_bytes : p.ranks[0].combined_bytes) << "):";
    for (const MemoryLine& l : p.breakdown) os << "\n    " << format_bytes(l.bytes) << "  " << l.label;
    if (cuda) os << "\n  rank 0 host: " << format_bytes(p.ranks[0].host_bytes) << " for the phase's buffers";
    os << "\n  time:";
    for (const auto& [k, v] : p.seconds_by_part) os << " " << k << " " << duration(v) << ";";
    for (const std::string& n : p.notes) os << "\n  note: " << n;
    os << "\n";
  }
  os << "\nassumptions:\n";
  for (const std::string& a : plan.assumptions) os << "  - " << a << "\n";
  if (const auto refusal = plan_refusal(plan)) os << "\n" << *refusal << "\n";
  else os << "\nthe plan fits.\n";
  return os.str();
}

}  // namespace caldera::pipeline
