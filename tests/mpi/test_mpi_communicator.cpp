// MpiCommunicator on 1-4 real MPI ranks: every collective on real data, chunked calls (a forced
// chunk size of a few elements against the unchunked path), agreements, topology, determinism of
// the fp64 sum-reduce and the error paths. Each rank can rebuild every other rank's input from
// (seed, rank), so expected values are computed locally, independently of MPI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm/mpi_detail.h"
#include "core/error.h"
#include "core/rng.h"

namespace caldera::comm {
namespace {

constexpr uint64_t kSeed = 20240601;
/// Forces several MPI calls per collective on the small buffers below (and non-divisible tails).
constexpr CommOptions kTinyChunks{.max_chunk_elements = 7};

/// Rank r's test vector: n values in [-1, 1) from stream (kSeed, tag, r).
std::vector<double> rank_data(int r, int64_t n, uint64_t tag) {
  const Rng s = Rng(kSeed).stream({tag, static_cast<uint64_t>(r)});
  std::vector<double> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 2.0 * s.uniform(i) - 1.0 + 1e-3 * s.normal(i + v.size());
  return v;
}

/// Integer-valued doubles (|v| < 2^20): sums are exact whatever order MPI adds them in.
std::vector<double> rank_integers(int r, int64_t n, uint64_t tag) {
  auto v = rank_data(r, n, tag);
  for (auto& x : v) x = std::round(x * (1 << 20));
  return v;
}

std::span<const std::byte> as_bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

class MpiCommTest : public ::testing::Test {
 protected:
  MpiSession session_;  // MPI is already initialised by the test main: this one must not own it
  MpiCommunicator comm_;
};

TEST_F(MpiCommTest, SessionIsIdempotentWhenMpiIsAlreadyInitialised) {
  EXPECT_FALSE(session_.owns_mpi());
  EXPECT_TRUE(MpiSession::active());
  MpiSession second;
  EXPECT_FALSE(second.owns_mpi());
  EXPECT_EQ(make_communicator()->kind_name(), "mpi");
}

TEST_F(MpiCommTest, TopologyMatchesMpiAndHostNames) {
  int world_rank = -1;
  int world_size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  EXPECT_EQ(comm_.rank(), world_rank);
  EXPECT_EQ(comm_.size(), world_size);
  EXPECT_EQ(comm_.kind_name(), "mpi");
  // Node-local ranks: the ranks sharing my host name number local_size and hold distinct local
  // ranks 0..local_size-1.
  const auto hosts = comm_.allgather_strings(comm_.host_name());
  const auto local_ranks = comm_.allgather_value(comm_.local_rank());
  std::vector<int> mine;
  for (int r = 0; r < comm_.size(); ++r)
    if (hosts[static_cast<size_t>(r)] == comm_.host_name()) mine.push_back(local_ranks[static_cast<size_t>(r)]);
  std::sort(mine.begin(), mine.end());
  EXPECT_EQ(static_cast<int>(mine.size()), comm_.local_size());
  for (size_t i = 0; i < mine.size(); ++i) EXPECT_EQ(mine[i], static_cast<int>(i));
  comm_.barrier();
}

TEST_F(MpiCommTest, AllreduceSumMaxMinOnEveryType) {
  const int n = comm_.size();
  const int64_t len = 1000;
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    std::vector<double> expect(len, op == ReduceOp::kSum ? 0.0 : op == ReduceOp::kMax ? -1e300 : 1e300);
    for (int r = 0; r < n; ++r) {
      const auto v = rank_data(r, len, 1);
      for (int64_t i = 0; i < len; ++i) {
        auto& e = expect[static_cast<size_t>(i)];
        const double x = v[static_cast<size_t>(i)];
        e = op == ReduceOp::kSum ? e + x : op == ReduceOp::kMax ? std::max(e, x) : std::min(e, x);
      }
    }
    auto d = rank_data(comm_.rank(), len, 1);
    comm_.allreduce(std::span<double>(d), op);
    std::vector<float> f(d.size());
    const auto src = rank_data(comm_.rank(), len, 1);
    std::transform(src.begin(), src.end(), f.begin(), [](double x) { return static_cast<float>(x); });
    comm_.allreduce(std::span<float>(f), op);
    std::vector<int64_t> k(d.size());
    std::transform(src.begin(), src.end(), k.begin(), [](double x) { return std::llround(x * 1e12); });
    comm_.allreduce(std::span<int64_t>(k), op);
    for (size_t i = 0; i < d.size(); ++i) {
      EXPECT_NEAR(d[i], expect[i], 1e-13) << to_string(op) << " i=" << i;
      EXPECT_NEAR(f[i], expect[i], 1e-5) << to_string(op) << " i=" << i;
      if (op != ReduceOp::kSum) {
        EXPECT_EQ(d[i], expect[i]) << "max/min are exact";
      }
    }
    // int64: the same reduction on integers, exact (values up to n * 1e12, above 2^32).
    int64_t expect_k0 = op == ReduceOp::kSum ? 0 : op == ReduceOp::kMax ? INT64_MIN : INT64_MAX;
    for (int r = 0; r < n; ++r) {
      const int64_t x = std::llround(rank_data(r, len, 1)[0] * 1e12);
      expect_k0 = op == ReduceOp::kSum ? expect_k0 + x : op == ReduceOp::kMax ? std::max(expect_k0, x)
                                                                            : std::min(expect_k0, x);
    }
    EXPECT_EQ(k[0], expect_k0) << to_string(op);
  }
  EXPECT_EQ(comm_.allreduce_value<int64_t>(comm_.rank() + 1, ReduceOp::kSum), int64_t{n} * (n + 1) / 2);
  EXPECT_EQ(comm_.allreduce_value(static_cast<double>(comm_.rank()), ReduceOp::kMax), n - 1.0);
}

TEST_F(MpiCommTest, AllreduceResultIsBitwiseIdenticalOnEveryRank) {
  auto d = rank_data(comm_.rank(), 4099, 2);
  comm_.allreduce(std::span<double>(d), ReduceOp::kSum);
  // Compare every rank's bits with rank 0's.
  auto root_copy = d;
  comm_.broadcast(root_copy, 0);
  EXPECT_EQ(std::memcmp(root_copy.data(), d.data(), d.size() * sizeof(double)), 0);
}

TEST_F(MpiCommTest, ChunkedAllreduceMatchesUnchunked) {
  MpiCommunicator chunked(kTinyChunks);
  const int64_t len = 100;  // 15 chunks of 7 and a tail of 2
  auto a = rank_integers(comm_.rank(), len, 3);
  auto b = a;
  comm_.allreduce(std::span<double>(a), ReduceOp::kSum);
  chunked.allreduce(std::span<double>(b), ReduceOp::kSum);
  std::vector<double> expect(len, 0.0);
  for (int r = 0; r < comm_.size(); ++r) {
    const auto v = rank_integers(r, len, 3);
    for (size_t i = 0; i < expect.size(); ++i) expect[i] += v[i];
  }
  EXPECT_EQ(a, expect);
  EXPECT_EQ(b, expect);
}

TEST_F(MpiCommTest, ReduceSumToEveryRootLeavesOtherRanksUnchanged) {
  for (const CommOptions& opts : {CommOptions{}, kTinyChunks}) {
    MpiCommunicator c(opts);
    for (int root = 0; root < c.size(); ++root) {
      const int64_t len = 1003;
      const auto input = rank_integers(c.rank(), len, 10 + static_cast<uint64_t>(root));
      auto data = input;
      c.reduce_sum(std::span<double>(data), root);
      if (c.rank() == root) {
        std::vector<double> expect(len, 0.0);
        for (int r = 0; r < c.size(); ++r) {
          const auto v = rank_integers(r, len, 10 + static_cast<uint64_t>(root));
          for (size_t i = 0; i < expect.size(); ++i) expect[i] += v[i];
        }
        EXPECT_EQ(data, expect) << "root " << root << " chunk " << opts.max_chunk_elements;
      } else {
        EXPECT_EQ(data, input) << "non-root buffers are inputs only";
      }
    }
  }
}

TEST_F(MpiCommTest, Fp64SumReduceIsDeterministic) {
  // Random (not integer) data, so the rounding depends on the order of additions: two calls with
  // the same world, data and chunking must still give the same bits.
  for (const CommOptions& opts : {CommOptions{}, CommOptions{.max_chunk_elements = 4096}}) {
    MpiCommunicator c(opts);
    const auto input = rank_data(c.rank(), 100000, 20);
    auto first = input;
    auto second = input;
    c.reduce_sum(std::span<double>(first), 0);
    c.reduce_sum(std::span<double>(second), 0);
    if (c.rank() == 0) {
      EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(double)), 0);
      std::vector<double> expect(input.size(), 0.0);
      for (int r = 0; r < c.size(); ++r) {
        const auto v = rank_data(r, 100000, 20);
        for (size_t i = 0; i < expect.size(); ++i) expect[i] += v[i];
      }
      for (size_t i = 0; i < expect.size(); i += 997) EXPECT_NEAR(first[i], expect[i], 1e-14);
    }
  }
}

TEST_F(MpiCommTest, BroadcastBytesStringsAndVectorsFromEveryRoot) {
  MpiCommunicator chunked(kTinyChunks);
  for (Communicator* c : {static_cast<Communicator*>(&comm_), static_cast<Communicator*>(&chunked)}) {
    for (int root = 0; root < c->size(); ++root) {
      std::vector<std::byte> bytes(1000);
      for (size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<std::byte>((i * 31 + static_cast<size_t>(c->rank()) * 7) & 0xff);
      c->broadcast(std::span<std::byte>(bytes), root);
      for (size_t i = 0; i < bytes.size(); ++i)
        ASSERT_EQ(bytes[i], static_cast<std::byte>((i * 31 + static_cast<size_t>(root) * 7) & 0xff)) << i;

      std::string s = c->rank() == root ? std::string("{\"layer\": 17, \"root\": ") + std::to_string(root) + "}"
                                        : std::string(static_cast<size_t>(c->rank()) * 50, 'x');
      c->broadcast(s, root);
      EXPECT_EQ(s, std::string("{\"layer\": 17, \"root\": ") + std::to_string(root) + "}");

      std::vector<int64_t> v;
      if (c->rank() == root) v = {int64_t{1} << 40, -3, root};
      c->broadcast(v, root);
      EXPECT_EQ(v, (std::vector<int64_t>{int64_t{1} << 40, -3, root}));
    }
  }
}

TEST_F(MpiCommTest, FixedSizeAllgatherChunkedAndNot) {
  MpiCommunicator chunked(kTinyChunks);
  for (Communicator* c : {static_cast<Communicator*>(&comm_), static_cast<Communicator*>(&chunked)}) {
    std::vector<std::byte> mine(50);
    for (size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<std::byte>(c->rank() * 50 + static_cast<int>(i));
    const auto all = c->allgather(mine);
    ASSERT_EQ(all.size(), 50u * static_cast<size_t>(c->size()));
    for (int r = 0; r < c->size(); ++r)
      for (size_t i = 0; i < 50; ++i)
        ASSERT_EQ(all[static_cast<size_t>(r) * 50 + i], static_cast<std::byte>(r * 50 + static_cast<int>(i)));
    const auto ranks = c->allgather_value(c->rank() * 10 + 1);
    for (int r = 0; r < c->size(); ++r) EXPECT_EQ(ranks[static_cast<size_t>(r)], r * 10 + 1);
    EXPECT_TRUE(c->allgather(std::span<const std::byte>{}).empty());
  }
}

TEST_F(MpiCommTest, VariableSizeAllgatherOfPerRankJson) {
  MpiCommunicator chunked(kTinyChunks);  // total above 7 bytes: the per-root broadcast path
  for (Communicator* c : {static_cast<Communicator*>(&comm_), static_cast<Communicator*>(&chunked)}) {
    // Rank 1 contributes nothing; the others JSON of different lengths.
    auto json_of = [](int r) {
      return r == 1 ? std::string() : "{\"rank\":" + std::to_string(r) + ",\"units\":[" + std::string(r * 5, '1') + "]}";
    };
    const auto all = c->allgather_strings(json_of(c->rank()));
    ASSERT_EQ(all.size(), static_cast<size_t>(c->size()));
    for (int r = 0; r < c->size(); ++r) EXPECT_EQ(all[static_cast<size_t>(r)], json_of(r));
    const auto blobs = c->allgatherv(as_bytes_of(json_of(c->rank())));
    for (int r = 0; r < c->size(); ++r) EXPECT_EQ(blobs[static_cast<size_t>(r)].size(), json_of(r).size());
    const auto empty = c->allgather_strings("");
    for (const auto& e : empty) EXPECT_TRUE(e.empty());
  }
}

TEST_F(MpiCommTest, AnyAndAllAgreeOnEveryRank) {
  const int last = comm_.size() - 1;
  EXPECT_TRUE(comm_.any(comm_.rank() == last));
  EXPECT_FALSE(comm_.any(false));
  EXPECT_TRUE(comm_.all(true));
  EXPECT_FALSE(comm_.all(comm_.rank() != 0));
  EXPECT_EQ(comm_.any(comm_.rank() != 0), comm_.size() > 1);
  EXPECT_EQ(comm_.all(comm_.rank() == 0), comm_.size() == 1);
}

TEST_F(MpiCommTest, InvalidRootThrowsCommErrorOnEveryRank) {
  std::string s = "x";
  EXPECT_THROW(comm_.broadcast(s, comm_.size()), CommError);
  std::vector<double> d(8, 1.0);
  EXPECT_THROW(comm_.reduce_sum(std::span<double>(d), -1), CommError);
  comm_.barrier();  // nobody is left behind in a collective
}

TEST_F(MpiCommTest, MismatchedAllgatherSizesThrowCommErrorOnEveryRank) {
  if (comm_.size() == 1) GTEST_SKIP() << "sizes cannot differ on a world of one";
  std::vector<std::byte> mine(static_cast<size_t>(comm_.rank()) + 4);
  try {
    (void)comm_.allgather(mine);
    FAIL() << "no throw";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("same size"), std::string::npos) << e.what();
  }
  comm_.barrier();
}

TEST_F(MpiCommTest, FailingMpiCallThrowsCommErrorWithCallAndMpiMessage) {
  // An invalid root is caught by MPI's own argument checks; with MPI_ERRORS_RETURN on the
  // communicator the call returns an error code instead of aborting, on every rank.
  int value = 1;
  try {
    CALDERA_MPI_CHECK(MPI_Bcast(&value, 1, MPI_INT, -7, native_comm(comm_)));
    FAIL() << "no throw";
  } catch (const CommError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI_Bcast failed on world rank " + std::to_string(comm_.rank())), std::string::npos) << what;
    EXPECT_NE(what.find("MPI_ERR_ROOT"), std::string::npos) << what;
    EXPECT_NE(what.find("test_mpi_communicator.cpp"), std::string::npos) << what;
  }
  comm_.barrier();
}

}  // namespace
}  // namespace caldera::comm
