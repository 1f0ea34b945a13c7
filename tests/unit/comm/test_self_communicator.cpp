// SelfCommunicator: every collective of the interface on a world of one, the argument checks
// shared with MpiCommunicator, abort's exit code, and make_communicator without MPI.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/self_communicator.h"
#include "core/error.h"

namespace caldera::comm {
namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

TEST(SelfCommunicator, IsAWorldOfOne) {
  SelfCommunicator c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  EXPECT_EQ(c.local_rank(), 0);
  EXPECT_EQ(c.local_size(), 1);
  EXPECT_FALSE(c.host_name().empty());
  EXPECT_EQ(c.host_name(), local_host_name());
  EXPECT_EQ(c.kind_name(), "self");
  c.barrier();
}

TEST(SelfCommunicator, ReductionsOverOneRankAreTheIdentity) {
  SelfCommunicator c;
  std::vector<double> d = {1.5, -2.0, 3.25};
  c.allreduce(std::span<double>(d), ReduceOp::kSum);
  EXPECT_EQ(d, (std::vector<double>{1.5, -2.0, 3.25}));
  std::vector<float> f = {4.0f, -1.0f};
  c.allreduce(std::span<float>(f), ReduceOp::kMax);
  EXPECT_EQ(f, (std::vector<float>{4.0f, -1.0f}));
  std::vector<int64_t> i = {int64_t{1} << 40, -7};
  c.allreduce(std::span<int64_t>(i), ReduceOp::kMin);
  EXPECT_EQ(i, (std::vector<int64_t>{int64_t{1} << 40, -7}));
  EXPECT_EQ(c.allreduce_value(2.5, ReduceOp::kSum), 2.5);
  c.reduce_sum(std::span<double>(d), 0);
  EXPECT_EQ(d, (std::vector<double>{1.5, -2.0, 3.25}));
}

TEST(SelfCommunicator, BroadcastAndGatherReturnOwnData) {
  SelfCommunicator c;
  std::string s = "config";
  c.broadcast(s, 0);
  EXPECT_EQ(s, "config");
  std::vector<int> v = {3, 1, 4};
  c.broadcast(v, 0);
  EXPECT_EQ(v, (std::vector<int>{3, 1, 4}));
  const auto all = c.allgather(bytes_of("abc"));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(static_cast<char>(all[2]), 'c');
  EXPECT_EQ(c.allgather_value(42), (std::vector<int>{42}));
  EXPECT_EQ(c.allgather_strings("{\"rank\":0}"), (std::vector<std::string>{"{\"rank\":0}"}));
  EXPECT_EQ(c.allgather_strings(""), (std::vector<std::string>{""}));
  EXPECT_TRUE(c.any(true));
  EXPECT_FALSE(c.any(false));
  EXPECT_TRUE(c.all(true));
  EXPECT_FALSE(c.all(false));
}

TEST(SelfCommunicator, RootOutsideTheWorldThrowsCommError) {
  SelfCommunicator c;
  std::string s = "x";
  EXPECT_THROW(c.broadcast(s, 1), CommError);
  std::vector<double> d(4, 1.0);
  EXPECT_THROW(c.reduce_sum(std::span<double>(d), -1), CommError);
  try {
    c.broadcast(s, 3);
    FAIL() << "no throw";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("root rank 3 is outside [0, 1)"), std::string::npos) << e.what();
  }
}

TEST(SelfCommunicatorDeathTest, AbortEndsTheProcessWithTheCodeAndMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(SelfCommunicator().abort(7, "unit 3.mlp.down failed"), ::testing::ExitedWithCode(7),
              "aborts \\(exit code 7\\): unit 3.mlp.down failed");
}

TEST(MakeCommunicator, WithoutMpiGivesTheSelfCommunicator) {
  const auto c = make_communicator();
  EXPECT_EQ(c->kind_name(), "self");
  EXPECT_EQ(c->size(), 1);
}

TEST(CommOptions, ChunkSizeMustFitAnMpiCount) {
  EXPECT_NO_THROW(CommOptions{}.validate());
  EXPECT_NO_THROW((CommOptions{.max_chunk_elements = 1}).validate());
  EXPECT_THROW((CommOptions{.max_chunk_elements = 0}).validate(), ConfigError);
  EXPECT_THROW((CommOptions{.max_chunk_elements = int64_t{1} << 31}).validate(), ConfigError);
  EXPECT_THROW((void)make_communicator(CommOptions{.max_chunk_elements = -5}), ConfigError);
}

}  // namespace
}  // namespace caldera::comm
