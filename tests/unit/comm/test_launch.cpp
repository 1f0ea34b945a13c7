// check_launch (srun without PMIx) and nccl_usable (one GPU per rank), both pure.
#include <gtest/gtest.h>

#include "comm/launch.h"
#include "comm/self_communicator.h"

namespace caldera::comm {
namespace {

TEST(CheckLaunch, SrunWithoutPmixIsReportedWithTheFix) {
  const auto msg = check_launch(1, "4");
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(*msg, "srun started 4 tasks but MPI sees a world of 1: launch with `srun --mpi=pmix` (or set "
                  "MpiDefault=pmix)");
  const auto padded = check_launch(1, " 16\n");
  ASSERT_TRUE(padded.has_value());
  EXPECT_NE(padded->find("srun started 16 tasks"), std::string::npos) << *padded;
}

TEST(CheckLaunch, ConsistentOrNonSlurmLaunchesPass) {
  EXPECT_FALSE(check_launch(4, "4").has_value());       // srun --mpi=pmix -n 4
  EXPECT_FALSE(check_launch(1, "1").has_value());       // srun -n 1
  EXPECT_FALSE(check_launch(1, std::nullopt).has_value());  // plain process, no SLURM
  EXPECT_FALSE(check_launch(2, std::nullopt).has_value());  // mpirun outside SLURM
  EXPECT_FALSE(check_launch(2, "8").has_value());       // mpirun -np 2 inside an 8-task allocation
}

TEST(CheckLaunch, UnparseableTaskCountsAreIgnored) {
  EXPECT_FALSE(check_launch(1, "").has_value());
  EXPECT_FALSE(check_launch(1, "four").has_value());
  EXPECT_FALSE(check_launch(1, "4x").has_value());
  EXPECT_FALSE(check_launch(1, "0").has_value());
  EXPECT_FALSE(check_launch(1, "-3").has_value());
}

TEST(NcclUsable, NeedsADistinctGpuForEveryRankOnTheNode) {
  EXPECT_TRUE(nccl_usable(1, 1));
  EXPECT_TRUE(nccl_usable(8, 8));
  EXPECT_TRUE(nccl_usable(4, 8));
  EXPECT_FALSE(nccl_usable(2, 1));  // two ranks on the one H100: NCCL refuses duplicate GPUs
  EXPECT_FALSE(nccl_usable(8, 4));
  EXPECT_FALSE(nccl_usable(1, 0));  // no GPU
  EXPECT_FALSE(nccl_usable(0, 4));
}

TEST(NcclUsable, CollectiveFormOnASingleProcess) {
  SelfCommunicator self;
  EXPECT_TRUE(nccl_usable(self, 1));
  EXPECT_TRUE(nccl_usable(self, 8));
  EXPECT_FALSE(nccl_usable(self, 0));
}

}  // namespace
}  // namespace caldera::comm
