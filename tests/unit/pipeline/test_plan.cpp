// The planner (pipeline/plan.h) on the shipped Llama-2-70B config: the 8 x 8 H100 recipe fits,
// one node is refused with suggestions that are each checked by re-planning (the smallest node
// count and the largest calibration size that fit), memory moves the way the model says it must
// (more ranks: less phase-1 memory per rank, phase 2 unchanged; more sequences: more activations),
// host shortfalls are found per node, and the JSON table is complete.
#include <gtest/gtest.h>

#include <regex>

#include "algo/caldera.h"
#include "io/hf_config.h"
#include "pipeline/plan.h"
#include "pipeline/plan_model.h"
#include "test_util.h"

namespace caldera::pipeline {
namespace {

std::filesystem::path repo_root() { return test::data_dir().parent_path().parent_path(); }

struct Fixture70b {
  algo::CalderaMethod method{algo::CalderaParams::paper(), "caldera"};
  PlanInputs inputs;
  Fixture70b() {
    inputs.config = io::read_hf_config(repo_root() / "jobs/models/llama-2-70b/config.json");
    inputs.calib_sequences = 6144;
    inputs.forward.seq_len = 4096;
    inputs.forward.micro_batch_seqs = 8;
    inputs.method = &method;
    inputs.target.backend = linalg::BackendKind::kCuda;
    inputs.target.nodes = 8;
    inputs.target.ranks_per_node = 8;
    inputs.target.gpu_name = "h100";
    inputs.target.gpu_memory_bytes = gpu_memory_bytes(GpuModel::kH100);
    inputs.target.host_memory_bytes = int64_t{2048} << 30;
    inputs.target.throughput = gpu_profile(GpuModel::kH100);
  }
  PlanInputs with_nodes(int nodes) const {
    PlanInputs in = inputs;
    in.target.nodes = nodes;
    return in;
  }
};

int64_t max_gpu_need(const Plan& p, PlanPhase phase) {
  int64_t m = 0;
  for (int r = 0; r < p.inputs.target.world_size(); ++r) m = std::max(m, p.gpu_need(phase, r));
  return m;
}

bool phase1_gpu_fits(const PlanInputs& in) {
  const Plan p = make_plan(in);
  return max_gpu_need(p, PlanPhase::kHessians) <= p.gpu_usable_bytes();
}

TEST(PlanPartition, RankSequencesCoverTheCalibrationInWholeMicroBatches) {
  for (int64_t seqs : {1, 7, 64, 6144, 6150})
    for (int64_t mb : {1, 8})
      for (int world : {1, 3, 64}) {
        int64_t total = 0, lo = seqs, hi = 0;
        for (int r = 0; r < world; ++r) {
          const int64_t s = detail::rank_sequences(seqs, mb, world, r);
          total += s;
          lo = std::min(lo, s);
          hi = std::max(hi, s);
        }
        EXPECT_EQ(total, seqs) << seqs << " " << mb << " " << world;
        EXPECT_LT(hi - lo, 2 * mb) << seqs  // one more batch, and the last batch may be partial
        << " " << mb << " " << world;
        EXPECT_EQ(detail::rank_sequences(seqs, mb, world, 0), hi);  // rank 0 gets the most
      }
}

TEST(Plan, Llama70bOn64H100Fits) {
  const Fixture70b f;
  const Plan p = make_plan(f.inputs);
  EXPECT_FALSE(plan_refusal(p).has_value()) << *plan_refusal(p);
  EXPECT_NO_THROW(check_plan_fits(p));
  for (PlanPhase phase : kAllPlanPhases) {
    EXPECT_EQ(p.phase(phase).ranks.size(), 64u);
    EXPECT_GT(p.phase(phase).seconds, 0.0);
  }
  // Phase 1 holds rank 0's 96 sequences of activations (96 x 4096 x 8192 fp32 = 12 GiB) and the
  // fixed-point accumulators (16 bytes per entry of the four Hessians).
  const int64_t activations = int64_t{96} * 4096 * 8192 * 4;
  const int64_t accumulators = (3 * int64_t{8192} * 8192 + int64_t{28672} * 28672) * 16;
  EXPECT_GT(p.phase(PlanPhase::kHessians).ranks[0].backend_bytes, activations + accumulators);
  EXPECT_LT(max_gpu_need(p, PlanPhase::kHessians), p.gpu_usable_bytes());
  // Phase 2 on the GPU is the largest unit's working set; rank 0 gets a down_proj first.
  EXPECT_EQ(p.phase(PlanPhase::kCompress).ranks[0].backend_bytes,
            f.method.estimate(8192, 28672, linalg::BackendKind::kCuda).memory.backend + (int64_t{32} << 20) + 256);
  // Phase 3 runs on rank 0 only.
  EXPECT_TRUE(p.phase(PlanPhase::kExport).ranks[0].active);
  EXPECT_FALSE(p.phase(PlanPhase::kExport).ranks[1].active);
}

TEST(Plan, Llama70bOnOneNodeIsRefusedWithCheckedSuggestions) {
  const Fixture70b f;
  const Plan p = make_plan(f.with_nodes(1));
  const auto refusal = plan_refusal(p);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_THROW(check_plan_fits(p), ConfigError);
  EXPECT_NE(refusal->find("phase 1 (hessians), rank 0: needs"), std::string::npos) << *refusal;
  EXPECT_NE(refusal->find("GPU memory"), std::string::npos) << *refusal;
  // The suggested node count is the smallest that fits.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*refusal, m, std::regex("--nodes (\\d+)"))) << *refusal;
  const int nodes = std::stoi(m[1]);
  EXPECT_TRUE(phase1_gpu_fits(f.with_nodes(nodes)));
  EXPECT_FALSE(phase1_gpu_fits(f.with_nodes(nodes - 1)));
  // The suggested calibration size is the largest that fits on one node.
  ASSERT_TRUE(std::regex_search(*refusal, m, std::regex("--max-calib-seqs (\\d+)"))) << *refusal;
  PlanInputs fewer = f.with_nodes(1);
  fewer.calib_sequences = std::stoll(m[1]);
  EXPECT_TRUE(phase1_gpu_fits(fewer));
  fewer.calib_sequences += 1;
  EXPECT_FALSE(phase1_gpu_fits(fewer));
  // A bigger GPU is quantified.
  EXPECT_NE(refusal->find("a bigger GPU: at least"), std::string::npos) << *refusal;
  // The JSON says the same.
  const io::JsonValue j = plan_to_json(p);
  EXPECT_FALSE(j.at("fits").as_bool());
  EXPECT_EQ(j.at("refusal").as_string(), *refusal);
}

TEST(Plan, MoreRanksLowerPhase1MemoryButNotPhase2) {
  const Fixture70b f;
  int64_t previous = std::numeric_limits<int64_t>::max();
  int64_t phase2 = -1;
  for (int nodes : {2, 4, 8, 16}) {
    const Plan p = make_plan(f.with_nodes(nodes));
    const int64_t need = max_gpu_need(p, PlanPhase::kHessians);
    EXPECT_LT(need, previous) << nodes << " nodes";
    previous = need;
    const int64_t need2 = max_gpu_need(p, PlanPhase::kCompress);
    if (phase2 >= 0) {
      EXPECT_EQ(need2, phase2) << nodes << " nodes";
    }
    phase2 = need2;
  }
}

TEST(Plan, TwiceTheSequencesAddTheirActivations) {
  const Fixture70b f;
  PlanInputs twice = f.inputs;
  twice.calib_sequences *= 2;
  const int64_t a = make_plan(f.inputs).phase(PlanPhase::kHessians).ranks[0].backend_bytes;
  const int64_t b = make_plan(twice).phase(PlanPhase::kHessians).ranks[0].backend_bytes;
  EXPECT_EQ(b - a, int64_t{96} * 4096 * 8192 * 4);  // 96 more sequences of fp32 activations on rank 0
}

TEST(Plan, HostShortfallNamesTheNodeAndWhatToChange) {
  Fixture70b f;
  f.inputs.target.host_memory_bytes = int64_t{64} << 30;  // 64 GiB nodes: rank 0's reduction staging alone needs ~27 GiB
  const Plan p = make_plan(f.inputs);
  const auto refusal = plan_refusal(p);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_NE(refusal->find("node 0 (ranks 0..7): needs"), std::string::npos) << *refusal;
  EXPECT_NE(refusal->find("host memory"), std::string::npos) << *refusal;
  EXPECT_NE(refusal->find("nodes with more memory: at least"), std::string::npos) << *refusal;
  // Node 0 holds rank 0 (the writer) and so needs the most.
  for (int node = 1; node < 8; ++node)
    EXPECT_GE(p.node_host_need(PlanPhase::kHessians, 0), p.node_host_need(PlanPhase::kHessians, node));
}

TEST(Plan, CpuTargetNeedsHostMemoryOnly) {
  Fixture70b f;
  f.inputs.target.backend = linalg::BackendKind::kCpu;
  f.inputs.target.gpu_memory_bytes = 0;
  const Plan p = make_plan(f.inputs);
  for (PlanPhase phase : kAllPlanPhases) {
    EXPECT_EQ(p.gpu_need(phase, 0), 0);
    // A CPU rank holds the backend's memory and its host buffers at once.
    const RankPhase& r = p.phase(phase).ranks[0];
    EXPECT_GE(p.host_need(phase, 0), r.combined_bytes);
    EXPECT_GE(r.combined_bytes, std::max(r.backend_bytes, r.host_bytes));
  }
}

TEST(Plan, InvalidInputsAreReportedTogether) {
  Fixture70b f;
  f.inputs.calib_sequences = 0;
  f.inputs.target.nodes = 0;
  f.inputs.forward.micro_batch_seqs = 0;
  try {
    (void)make_plan(f.inputs);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--calib-seqs"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--nodes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--micro-batch"), std::string::npos) << msg;
  }
}

TEST(Plan, JsonHoldsEveryRankOfEveryPhase) {
  const Fixture70b f;
  const Plan p = make_plan(f.inputs);
  const io::JsonValue j = io::JsonValue::parse(plan_to_json(p).dump());
  EXPECT_TRUE(j.at("fits").as_bool());
  EXPECT_TRUE(j.at("refusal").is_null());
  EXPECT_EQ(j.at("target").at("world_size").as_int(), 64);
  const auto& phases = j.at("phases").as_array();
  ASSERT_EQ(phases.size(), 3u);
  for (size_t i = 0; i < phases.size(); ++i) {
    EXPECT_EQ(phases[i].at("phase").as_string(), to_string(kAllPlanPhases[i]));
    const auto& ranks = phases[i].at("ranks").as_array();
    ASSERT_EQ(ranks.size(), 64u);
    for (const auto& r : ranks) {
      const int rank = static_cast<int>(r.at("rank").as_int());
      EXPECT_EQ(r.at("gpu_need_bytes").as_int(), p.gpu_need(kAllPlanPhases[i], rank));
      EXPECT_EQ(r.at("host_need_bytes").as_int(), p.host_need(kAllPlanPhases[i], rank));
    }
    EXPECT_EQ(phases[i].at("nodes").as_array().size(), 8u);
    EXPECT_FALSE(phases[i].at("breakdown_rank0").as_array().empty());
  }
  EXPECT_GT(j.at("assumptions").as_array().size(), 5u);
  const std::string text = plan_to_text(p);
  EXPECT_NE(text.find("the plan fits"), std::string::npos);
  EXPECT_NE(text.find("activations"), std::string::npos);
}

}  // namespace
}  // namespace caldera::pipeline
