// Sharded safetensors sets (model.safetensors.index.json): the bundled two-shard model, and every
// index/shard inconsistency.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

using test::build_safetensors;
using test::expect_error;
using test::f32_bytes;

TEST(SafetensorsSet, BundledTinyModelIsShardedAndLazy) {
  const auto set = SafetensorsSet::open(test::tiny_model_dir());
  EXPECT_EQ(set.files().size(), 2u);
  EXPECT_EQ(set.tensor_names().size(), 4u * 9u + 3u);  // 9 per layer + embedding, final norm, lm_head
  EXPECT_TRUE(set.contains("lm_head.weight"));
  EXPECT_FALSE(set.contains("model.layers.4.mlp.up_proj.weight"));
  EXPECT_EQ(set.index_file().filename(), "model.safetensors.index.json");
  // lm_head lives in the second shard (per the index); reading it opens (maps) only that shard.
  auto mapped = [](const std::string& file) {
    std::ifstream maps("/proc/self/maps");
    const std::string text((std::istreambuf_iterator<char>(maps)), {});
    return text.find(file) != std::string::npos;
  };
  const TensorInfo& head = set.info("lm_head.weight");
  const auto shard1 = (test::tiny_model_dir() / "model-00001-of-00002.safetensors").string();
  const auto shard2 = (test::tiny_model_dir() / "model-00002-of-00002.safetensors").string();
  if (std::ifstream("/proc/self/maps")) {
    EXPECT_TRUE(mapped(shard2));
    EXPECT_FALSE(mapped(shard1));
  }
  EXPECT_EQ(head.file.filename(), "model-00002-of-00002.safetensors");
  EXPECT_EQ(head.shape, (std::vector<int64_t>{4096, 256}));
  EXPECT_EQ(head.dtype, DType::kBF16);
  EXPECT_NO_THROW(set.open_all());
  expect_error<IoError>([&] { set.info("model.layers.9.mlp.up_proj.weight"); },
                        {"model.layers.9.mlp.up_proj.weight", "model.safetensors.index.json"});
}

class ShardedFixture : public ::testing::Test {
 protected:
  test::TempDir dir_{"shards"};
  std::filesystem::path index_ = dir_ / "model.safetensors.index.json";

  void write_index(const std::string& weight_map) {
    test::write_text(index_, R"({"metadata":{"total_size":16},"weight_map":)" + weight_map + "}");
  }
  void write_shards() {
    build_safetensors(dir_ / "s1.safetensors", {{"a", "F32", {2}, f32_bytes({1, 2})}});
    build_safetensors(dir_ / "s2.safetensors", {{"b", "F32", {2}, f32_bytes({3, 4})}});
  }
};

TEST_F(ShardedFixture, ReadsAcrossShards) {
  write_shards();
  write_index(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  const auto set = SafetensorsSet::open(dir_.path());
  EXPECT_EQ(set.read_f32("a")(0, 1), 2.f);
  EXPECT_EQ(set.read_f32("b")(0, 0), 3.f);
  EXPECT_EQ(set.bytes("b").size(), 8u);
}

TEST_F(ShardedFixture, TensorMissingFromItsShard) {
  write_shards();
  write_index(R"({"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"})");
  const auto set = SafetensorsSet::open(dir_.path());
  expect_error<IoError>([&] { set.read_f32("b"); }, {"tensor 'c'", "s2.safetensors", "does not contain it"});
  expect_error<IoError>([&] { set.open_all(); }, {"tensor 'c'", index_.string()});
}

TEST_F(ShardedFixture, IndexPointsAtMissingShard) {
  write_shards();
  write_index(R"({"a":"s1.safetensors","b":"s3.safetensors"})");
  expect_error<IoError>([&] { SafetensorsSet::open(dir_.path()); },
                        {index_.string(), "tensor 'b'", "s3.safetensors", "does not exist"});
}

TEST_F(ShardedFixture, DuplicateTensorAcrossShards) {
  build_safetensors(dir_ / "s1.safetensors", {{"a", "F32", {2}, f32_bytes({1, 2})}});
  build_safetensors(dir_ / "s2.safetensors", {{"a", "F32", {2}, f32_bytes({5, 6})}, {"b", "F32", {1}, f32_bytes({3})}});
  write_index(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  const auto set = SafetensorsSet::open(dir_.path());
  expect_error<IoError>([&] { set.open_all(); }, {"tensor 'a'", "s2.safetensors", "s1.safetensors", "two shards"});
}

TEST_F(ShardedFixture, ShardTensorNotListedInIndex) {
  build_safetensors(dir_ / "s1.safetensors", {{"a", "F32", {2}, f32_bytes({1, 2})}, {"z", "F32", {1}, f32_bytes({3})}});
  write_index(R"({"a":"s1.safetensors"})");
  const auto set = SafetensorsSet::open(dir_.path());
  expect_error<IoError>([&] { set.read_f32("a"); }, {"tensor 'z'", "s1.safetensors", "does not list"});
}

TEST_F(ShardedFixture, DuplicateKeyInIndex) {
  write_shards();
  write_index(R"({"a":"s1.safetensors","a":"s2.safetensors","b":"s2.safetensors"})");
  expect_error<IoError>([&] { SafetensorsSet::open(dir_.path()); }, {index_.string(), "duplicate key", "\"a\""});
}

TEST_F(ShardedFixture, ShardNameOutsideDirectory) {
  write_shards();
  write_index(R"({"a":"../s1.safetensors","b":"s2.safetensors"})");
  expect_error<IoError>([&] { SafetensorsSet::open(dir_.path()); }, {"tensor 'a'", "plain file name"});
}

TEST_F(ShardedFixture, MalformedIndex) {
  write_shards();
  test::write_text(index_, R"({"weight_map": ["a"]})");
  expect_error<IoError>([&] { SafetensorsSet::open(dir_.path()); }, {index_.string(), "weight_map"});
  test::write_text(index_, R"({"weight_map": {"a": 3}})");
  expect_error<IoError>([&] { SafetensorsSet::open(dir_.path()); }, {index_.string(), "weight_map[\"a\"]"});
  test::write_text(index_, R"({"weight_map": {}})");
  expect_error<IoError>([&] { SafetensorsSet::open(dir_.path()); }, {index_.string(), "no tensors"});
}

TEST_F(ShardedFixture, SingleFileAndEmptyDirectory) {
  expect_error<IoError>([&] { SafetensorsSet::open(dir_.path()); }, {dir_.path().string(), "model.safetensors"});
  build_safetensors(dir_ / "model.safetensors", {{"w", "F32", {1, 2}, f32_bytes({7, 8})}});
  const auto set = SafetensorsSet::open(dir_.path());
  EXPECT_TRUE(set.index_file().empty());
  EXPECT_EQ(set.read_f32("w")(0, 1), 8.f);
  EXPECT_EQ(SafetensorsSet::open(dir_ / "model.safetensors").tensor_names(), std::vector<std::string>{"w"});
}

}  // namespace
}  // namespace caldera::io
