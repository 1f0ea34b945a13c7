// Phase 1 on the CUDA backend (labels mpi;gpu; skips without a GPU): minillama-tiny Hessians from
// this world (1 rank: the NCCL path when usable; 2 ranks on one GPU: the MPI host path) agree with
// a single-process CUDA run to 1e-9 relative and with the CPU reference to 1e-5 (fp32 activations
// computed by different BLAS libraries). Micro-batches of one sequence make every GEMM the same
// shape whatever the rank count, so per-sequence activations are identical and only fp64
// summation order differs between world sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "comm/communicator.h"
#include "comm/partition.h"
#include "comm/self_communicator.h"
#include "io/hessian_file.h"
#include "io/token_file.h"
#include "linalg/backend.h"
#include "pipeline/hessian_phase.h"
#include "pipeline/hf_weight_source.h"
#include "test_util.h"

namespace caldera::pipeline {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSeqLen = 512;
constexpr int64_t kSeqs = 6;
constexpr double kWorldSizeTol = 1e-9;
constexpr double kCpuTol = 1e-5;

double rel_vec(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

TEST(HessiansGpu, CudaWorldAgreesWithOneProcessAndWithCpu) {
  CALDERA_REQUIRE_BACKEND(linalg::BackendKind::kCuda);
  auto world = comm::make_communicator();
  linalg::BackendOptions bo;
  bo.local_rank = world->local_rank();
  auto gpu = linalg::make_backend(linalg::BackendKind::kCuda, bo);
  const HfWeightSource source(test::tiny_model_dir());
  const auto calib = io::TokenFile::open(test::data_dir() / "calib.u32", kSeqLen, source.config().vocab_size, kSeqs);
  const comm::IndexRange mine = comm::partition_range(kSeqs, world->size(), world->rank());
  const auto slice = calib.slice(mine.begin, mine.end);

  std::string root;
  if (world->rank() == 0) root = test::make_temp_dir("caldera-hessians-gpu").string();
  world->broadcast(root, 0);
  HessianPhaseOptions options;
  options.forward = {kSeqLen, 1, 4096};
  options.model_fingerprint = source.model().fingerprint().digest();
  options.calibration_sha256 = calib.sha256();
  options.workdir = fs::path(root) / "world";
  const auto report = run_hessian_phase(*gpu, *world, source,
                                        std::span<const uint32_t>(slice.data, static_cast<size_t>(slice.size())),
                                        options);
  EXPECT_EQ(report.layers_collected, source.config().num_hidden_layers);
  if (world->rank() == 0) {
    std::printf("[ hessians-gpu ] %d rank(s), reduced by %s, %.2f s\n", world->size(), report.reducer.c_str(),
                report.seconds);
    comm::SelfCommunicator self;
    const auto all = calib.sequences();
    const std::span<const uint32_t> all_tokens(all.data, static_cast<size_t>(all.size()));
    HessianPhaseOptions one = options;
    one.workdir = fs::path(root) / "one-gpu";
    run_hessian_phase(*gpu, self, source, all_tokens, one);
    auto cpu = linalg::make_backend(linalg::BackendKind::kCpu);
    HessianPhaseOptions on_cpu = options;
    on_cpu.workdir = fs::path(root) / "cpu";
    run_hessian_phase(*cpu, self, source, all_tokens, on_cpu);
    double worst_world = 0, worst_cpu = 0;
    for (int64_t l = 0; l < source.config().num_hidden_layers; ++l) {
      const auto got = io::read_hessian_file(io::hessian_file_path(options.workdir, l));
      const auto ref = io::read_hessian_file(io::hessian_file_path(one.workdir, l));
      const auto ref_cpu = io::read_hessian_file(io::hessian_file_path(on_cpu.workdir, l));
      for (model::HessianInput in : model::kAllHessianInputs) {
        EXPECT_EQ(got[in].count, kSeqs * kSeqLen);
        const double dw = std::max(test::rel_diff(got[in].sum, ref[in].sum), rel_vec(got[in].mu_sum, ref[in].mu_sum));
        const double dc =
            std::max(test::rel_diff(got[in].sum, ref_cpu[in].sum), rel_vec(got[in].mu_sum, ref_cpu[in].mu_sum));
        worst_world = std::max(worst_world, dw);
        worst_cpu = std::max(worst_cpu, dc);
        EXPECT_LT(dw, kWorldSizeTol) << "layer " << l << " " << to_string(in);
        EXPECT_LT(dc, kCpuTol) << "layer " << l << " " << to_string(in);
      }
    }
    std::printf("[ hessians-gpu ] worst relative difference: vs one GPU process %.3e, vs CPU %.3e\n", worst_world,
                worst_cpu);
    fs::remove_all(root);
  }
}

}  // namespace
}  // namespace caldera::pipeline
