#include <gtest/gtest.h>

#include <fstream>

#include "core/dtype.h"
#include "pipeline/task_file.h"
#include "test_util.h"

namespace caldera::pipeline {
namespace {

namespace fs = std::filesystem;

algo::CompressedUnit sample_unit() {
  algo::CompressedUnit u;
  HostMatrix<float> l = test::random_normal(16, 4, 1);
  u.tensors["L"] = make_tensor(DType::kF32, l);
  std::vector<int64_t> codes = {1, -2, 3, 1LL << 40};
  u.tensors["Q_codes"] = make_tensor<int64_t>(DType::kI64, {2, 2}, codes.data());
  std::vector<uint16_t> half = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f), f32_to_bf16(3.25f)};
  u.tensors["SU"] = make_tensor<uint16_t>(DType::kBF16, {3}, half.data());
  u.tensors["scale"] = make_scalar_tensor(0.125);
  u.metrics.rel_error = 0.0712345678901234;
  u.metrics.bits = 1234.5;
  u.metrics.params = 77;
  u.metrics.error_history = {0.3, 0.1, 0.0712345678901234};
  u.metrics.extra = {{"rank", 16.0}, {"seconds_ldlq", 0.5}};
  return u;
}

TaskIdentity identity() { return TaskIdentity{"L000.mlp.up_proj", "caldera", "rank=16;bits_q=2", 16, 4, 42}; }

void expect_same(const algo::CompressedUnit& a, const algo::CompressedUnit& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    const Tensor& u = b.tensors.at(name);
    EXPECT_EQ(t.dtype, u.dtype) << name;
    EXPECT_EQ(t.shape, u.shape) << name;
    EXPECT_EQ(t.bytes, u.bytes) << name;
  }
  EXPECT_EQ(a.metrics.rel_error, b.metrics.rel_error);
  EXPECT_EQ(a.metrics.error_history, b.metrics.error_history);
  EXPECT_EQ(a.metrics.extra, b.metrics.extra);
  EXPECT_EQ(a.metrics.params, b.metrics.params);
}

TEST(TaskFile, RoundTripIsBitExact) {
  const fs::path dir = test::make_temp_dir("task");
  const fs::path p = dir / "L000.mlp.up_proj.h5";
  const auto unit = sample_unit();
  write_task_file(p, identity(), unit);
  EXPECT_TRUE(fs::exists(task_hash_path(p)));
  auto back = load_task_file(p, identity());
  ASSERT_TRUE(back.has_value());
  expect_same(unit, *back);
}

TEST(TaskFile, MissingSidecarOtherIdentityOrCorruptionMeansRecompute) {
  const fs::path dir = test::make_temp_dir("task");
  const fs::path p = dir / "u.h5";
  EXPECT_FALSE(load_task_file(p, identity()).has_value());
  write_task_file(p, identity(), sample_unit());
  TaskIdentity other = identity();
  other.parameters = "rank=32;bits_q=2";
  EXPECT_FALSE(load_task_file(p, other).has_value());
  // Flip one byte in the middle of the file: the hash (and Fletcher-32) no longer match.
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const auto size = static_cast<long>(f.tellg());
    f.seekp(size / 2);
    char c;
    f.seekg(size / 2);
    f.get(c);
    f.seekp(size / 2);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  EXPECT_FALSE(load_task_file(p, identity()).has_value());
  // Truncated file.
  write_task_file(p, identity(), sample_unit());
  fs::resize_file(p, fs::file_size(p) / 2);
  EXPECT_FALSE(load_task_file(p, identity()).has_value());
  // No sidecar.
  write_task_file(p, identity(), sample_unit());
  fs::remove(task_hash_path(p));
  EXPECT_FALSE(load_task_file(p, identity()).has_value());
}

TEST(CheckpointStore, SaveLoadReplaceAndIdentity) {
  const fs::path dir = test::make_temp_dir("ckpt");
  H5CheckpointStore store(dir / "u.partial.h5", identity());
  EXPECT_FALSE(store.load().has_value());
  auto unit = sample_unit();
  store.save(unit.tensors);
  unit.tensors["iteration"] = make_scalar_tensor(2.0);
  store.save(unit.tensors);
  EXPECT_EQ(store.saves(), 2);
  auto back = store.load();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->count("iteration"), 1u);
  TaskIdentity other = identity();
  other.seed = 7;
  H5CheckpointStore stranger(dir / "u.partial.h5", other);
  EXPECT_FALSE(stranger.load().has_value());
  store.remove();
  EXPECT_FALSE(fs::exists(dir / "u.partial.h5"));
}

}  // namespace
}  // namespace caldera::pipeline
