// safetensors writer: round trips through our reader, atomic publication, sharding, and
// compatibility with the Python `safetensors` package in both directions (when it is installed).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/sha256.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

using test::expect_error;

std::span<const std::byte> as_bytes_of(const std::vector<int32_t>& v) { return std::as_bytes(std::span(v)); }

SafetensorsWriter sample_writer(const HostMatrix<float>& m) {
  SafetensorsWriter w;
  w.add_matrix("w.f32", m.view(), DType::kF32);
  w.add_matrix("w.bf16", m.view(), DType::kBF16);
  w.add_matrix("norm.f16", m.view().rows_range(0, 1), DType::kF16, {m.cols()});
  const std::vector<int32_t> ints = {1, -2, 3, 2147483647};
  w.add("ints", DType::kI32, {2, 2}, as_bytes_of(ints));
  w.add_deferred("ramp.u8", DType::kU8, {5}, [](std::span<std::byte> out) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte(static_cast<uint8_t>(10 * i));
  });
  w.set_metadata({{"format", "pt"}, {"producer", "caldera-test"}});
  return w;
}

TEST(SafetensorsWriter, RoundTripsThroughTheReader) {
  test::TempDir dir("w");
  const auto m = test::random_normal(3, 5, 7);
  const auto published = sample_writer(m).write(dir / "out.safetensors");
  EXPECT_EQ(published.sha256, sha256_file(dir / "out.safetensors"));
  EXPECT_EQ(published.size_bytes, static_cast<int64_t>(std::filesystem::file_size(dir / "out.safetensors")));

  const auto f = SafetensorsFile::open(dir / "out.safetensors");
  EXPECT_EQ((8 + f.header_bytes().size()) % 8, 0u);  // data section 8-byte aligned
  EXPECT_EQ(f.metadata().at("producer"), "caldera-test");
  EXPECT_EQ(test::rel_diff(f.read_f32("w.f32"), m), 0.0);
  const auto b = f.read_f32("w.bf16");
  for (int64_t i = 0; i < m.size(); ++i) EXPECT_EQ(b.data()[i], bf16_to_f32(f32_to_bf16(m.data()[i])));
  EXPECT_LT(test::rel_diff(b, m), 1e-2);
  const auto& norm_info = f.info("norm.f16");
  EXPECT_EQ(norm_info.shape, (std::vector<int64_t>{5}));
  const auto norm = f.read_f32("norm.f16");
  for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(norm(0, j), f16_to_f32(f32_to_f16(m(0, j))));
  const auto ints = f.bytes("ints");
  int32_t v[4];
  std::memcpy(v, ints.data(), 16);
  EXPECT_EQ(v[1], -2);
  EXPECT_EQ(v[3], 2147483647);
  const auto ramp = f.bytes("ramp.u8");
  ASSERT_EQ(ramp.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(ramp[4]), 40);
  // Tensors back to back in insertion order (the Python reference rejects gaps).
  EXPECT_EQ(f.info("w.bf16").offset_bytes, f.info("w.f32").offset_bytes + 60);
  EXPECT_EQ(f.info("ramp.u8").offset_bytes + 5, f.file_size_bytes());
}

TEST(SafetensorsWriter, DeterministicAndAtomic) {
  test::TempDir dir("det");
  const auto m = test::random_normal(4, 4, 1);
  const auto a = sample_writer(m).write(dir / "a.safetensors");
  const auto b = sample_writer(m).write(dir / "b.safetensors");
  EXPECT_EQ(a.sha256, b.sha256);
  // A failing producer leaves the previous file in place and no temp file behind.
  SafetensorsWriter bad;
  bad.add_deferred("x", DType::kF32, {2}, [](std::span<std::byte>) { throw NumericError("producer failed"); });
  EXPECT_THROW(bad.write(dir / "a.safetensors"), NumericError);
  EXPECT_EQ(sha256_file(dir / "a.safetensors"), a.sha256);
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2);
  expect_error<IoError>([&] { sample_writer(m).write(dir / "no_such_dir" / "x.safetensors"); }, {"no_such_dir"});
}

TEST(SafetensorsWriter, RejectsBadTensors) {
  SafetensorsWriter w;
  const std::vector<int32_t> ints = {1, 2, 3};
  EXPECT_THROW(w.add("x", DType::kI32, {2, 2}, as_bytes_of(ints)), Error);  // 12 bytes for 16
  EXPECT_THROW(w.add("", DType::kI32, {3}, as_bytes_of(ints)), Error);
  EXPECT_THROW(w.add("__metadata__", DType::kI32, {3}, as_bytes_of(ints)), Error);
  EXPECT_THROW(w.add("neg", DType::kI32, {-3}, as_bytes_of(ints)), Error);
  w.add("x", DType::kI32, {3}, as_bytes_of(ints));
  EXPECT_THROW(w.add("x", DType::kI32, {3}, as_bytes_of(ints)), Error);
  HostMatrix<float> m(2, 2);
  EXPECT_THROW(w.add_matrix("m", m.view(), DType::kI32), Error);
  EXPECT_THROW(w.add_matrix("m", m.view(), DType::kF32, {3}), Error);
  EXPECT_EQ(w.num_tensors(), 1u);
}

TEST(SafetensorsWriter, ShardedSetReadsBack) {
  test::TempDir dir("shard");
  SafetensorsWriter w;
  std::vector<HostMatrix<float>> mats;
  for (int k = 0; k < 5; ++k) mats.push_back(test::random_normal(10, 25, 100 + static_cast<uint64_t>(k)));  // 1000 B
  for (int k = 0; k < 5; ++k) w.add_matrix("t" + std::to_string(k), mats[static_cast<std::size_t>(k)].view(), DType::kF32);
  w.add_matrix("big", test::random_normal(40, 25, 9).view(), DType::kF32);  // 4000 B > max: alone
  const auto out = w.write_sharded(dir.path(), 2500);
  ASSERT_EQ(out.shards.size(), 4u);  // {t0,t1} {t2,t3} {t4} {big}
  EXPECT_EQ(out.shards[0].path.filename(), "model-00001-of-00004.safetensors");
  EXPECT_EQ(out.shards[3].path.filename(), "model-00004-of-00004.safetensors");
  EXPECT_EQ(out.total_size_bytes, 9000);
  const std::string index = test::read_text(dir / "model.safetensors.index.json");
  EXPECT_NE(index.find("\"total_size\": 9000"), std::string::npos) << index;

  const auto set = SafetensorsSet::open(dir.path());
  set.open_all();
  EXPECT_EQ(set.tensor_names().size(), 6u);
  EXPECT_EQ(set.info("t3").file.filename(), "model-00002-of-00004.safetensors");
  EXPECT_EQ(set.info("t4").file.filename(), "model-00003-of-00004.safetensors");
  for (int k = 0; k < 5; ++k)
    EXPECT_EQ(test::rel_diff(set.read_f32("t" + std::to_string(k)), mats[static_cast<std::size_t>(k)]), 0.0);
  for (const auto& s : out.shards) EXPECT_LE(SafetensorsFile::open(s.path).tensors().size(), 2u);
}

/// Runs a shell command; returns its exit status.
int run(const std::string& cmd) { return std::system(cmd.c_str()); }

bool python_has(const std::string& modules) {
  return run("python3 -c 'import " + modules + "' >/dev/null 2>&1") == 0;
}

TEST(SafetensorsWriter, LoadsWithPythonSafetensors) {
  if (!python_has("safetensors, numpy"))
    GTEST_SKIP() << "python3 with the safetensors and numpy packages is not available "
                    "(pip install safetensors numpy to run this check)";
  test::TempDir dir("py");
  const auto m = test::random_normal(3, 5, 7);
  sample_writer(m).write(dir / "ours.safetensors");
  // Python checks: the file opens (full header validation, BF16 entry included), metadata, and the
  // numpy-representable tensors' values; it then writes its own file for us to read.
  std::ostringstream values;
  values.precision(9);
  values << "[";
  for (int64_t i = 0; i < m.size(); ++i) values << (i ? "," : "") << m.data()[i];
  values << "]";
  const std::string expect_f32 = values.str();
  const std::string script = R"PY(
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
path, out = sys.argv[1], sys.argv[2]
with safe_open(path, framework="numpy") as f:
    assert sorted(f.keys()) == ["ints", "norm.f16", "ramp.u8", "w.bf16", "w.f32"], f.keys()
    assert f.metadata() == {"format": "pt", "producer": "caldera-test"}, f.metadata()
    w = f.get_tensor("w.f32")
    assert w.shape == (3, 5) and w.dtype == np.float32
    assert np.allclose(w.ravel(), np.array()PY" + expect_f32 + R"PY(, dtype=np.float32), rtol=0, atol=0)
    assert f.get_tensor("norm.f16").dtype == np.float16 and f.get_tensor("norm.f16").shape == (5,)
    assert f.get_tensor("ints").tolist() == [[1, -2], [3, 2147483647]]
    assert f.get_tensor("ramp.u8").tolist() == [0, 10, 20, 30, 40]
    assert f.get_slice("w.bf16").get_shape() == [3, 5]
save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5,
           "b": np.array([1.5, -2.0], dtype=np.float16),
           "c": np.array([7, 8, 9], dtype=np.int64)}, out, metadata={"src": "python"})
)PY";
  test::write_text(dir / "check.py", script);
  ASSERT_EQ(run("python3 " + (dir / "check.py").string() + " " + (dir / "ours.safetensors").string() + " " +
                (dir / "theirs.safetensors").string()),
            0)
      << "the Python safetensors package rejected our file (see its output above)";
  const auto f = SafetensorsFile::open(dir / "theirs.safetensors");
  EXPECT_EQ(f.metadata().at("src"), "python");
  const auto a = f.read_f32("a");
  ASSERT_EQ(a.rows(), 2);
  EXPECT_EQ(a(1, 2), 2.5f);
  EXPECT_EQ(f.read_f32("b")(0, 1), -2.0f);
  EXPECT_EQ(f.info("c").dtype, DType::kI64);
}

}  // namespace
}  // namespace caldera::io
