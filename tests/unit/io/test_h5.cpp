// HDF5 layer: typed datasets of every supported element type and rank, attributes, shape and type
// checks, Fletcher-32 corruption detection, verification, atomic publication, silenced printing.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/h5.h"
#include "io/sha256.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io::h5 {
namespace {

using test::expect_error;

template <class T>
std::vector<T> iota_values(int64_t n, T scale) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<T>(static_cast<T>(i % 200) * scale);
  return v;
}

TEST(H5, DatasetsOfEveryTypeAndRank) {
  test::TempDir dir("h5");
  const auto path = dir / "a.h5";
  const auto d = iota_values<double>(2 * 3 * 4, 0.25);
  const auto f = iota_values<float>(7, 1.5f);
  const auto i64 = iota_values<int64_t>(6, -1000000000000LL);
  const auto i32 = iota_values<int32_t>(6, -7);
  const auto u16 = iota_values<uint16_t>(300, 3);
  const auto u8 = iota_values<uint8_t>(5, 1);
  {
    H5File file = H5File::create(path);
    file.write_dataset<double>("d", d, {2, 3, 4});
    file.write_dataset<float>("f", f, {7});
    const H5Group g = file.create_group("g");
    g.write_dataset<int64_t>("i64", i64, {3, 2});
    g.write_dataset<int32_t>("i32", i32, {6, 1});
    const H5Group sub = g.create_group("sub");
    sub.write_dataset<uint16_t>("u16", u16, {300});
    sub.write_dataset<uint8_t>("u8", u8, {5});
    sub.write_dataset<double>("empty", std::span<const double>(), {0, 3});
    file.set_attribute("version", int64_t{3});
    file.set_attribute("ratio", 0.125);
    file.set_attribute("note", "héllo, hdf5");
    g.set_attribute("count", int64_t{-5});
    g.set_attribute("count", int64_t{6});  // replaces
    file.close();
  }
  const H5File file = H5File::open(path);
  EXPECT_EQ(file.read_dataset<double>("d", {2, 3, 4}), d);
  EXPECT_EQ(file.read_dataset<float>("f", {7}), f);
  const H5Group g = file.open_group("g");
  EXPECT_EQ(g.read_dataset<int64_t>("i64", {3, 2}), i64);
  EXPECT_EQ(g.read_dataset<int32_t>("i32", {6, 1}), i32);
  EXPECT_EQ(g.open_group("sub").read_dataset<uint16_t>("u16", {300}), u16);
  EXPECT_EQ(g.open_group("sub").read_dataset<uint8_t>("u8", {5}), u8);
  EXPECT_TRUE(g.open_group("sub").read_dataset<double>("empty", {0, 3}).empty());
  EXPECT_EQ(file.attribute_int64("version"), 3);
  EXPECT_EQ(file.attribute_double("ratio"), 0.125);
  EXPECT_EQ(file.attribute_string("note"), "héllo, hdf5");
  EXPECT_EQ(g.attribute_int64("count"), 6);
  EXPECT_TRUE(file.contains("g"));
  EXPECT_FALSE(file.contains("nope"));
  EXPECT_TRUE(file.has_attribute("ratio"));
  EXPECT_FALSE(g.has_attribute("ratio"));

  // Slabs along the first dimension.
  const H5Dataset ds = file.open_dataset("d");
  EXPECT_EQ(ds.shape(), (std::vector<int64_t>{2, 3, 4}));
  std::vector<double> second(12);
  ds.read_slab<double>(1, 1, second);
  EXPECT_EQ(second[0], d[12]);
  EXPECT_THROW(ds.read_slab<double>(1, 2, second), Error);
}

TEST(H5, ShapeTypeAndNameErrorsNameFileAndObject) {
  test::TempDir dir("h5err");
  const auto path = dir / "b.h5";
  {
    H5File file = H5File::create(path);
    file.create_group("grp").write_dataset<float>("x", std::vector<float>{1, 2, 3, 4}, {2, 2});
    file.set_attribute("s", "text");
  }
  const H5File file = H5File::open(path);
  const H5Group g = file.open_group("grp");
  expect_error<IoError>([&] { g.read_dataset<float>("x", {4}); }, {path.string(), "/grp/x", "[2, 2]", "[4]"});
  expect_error<IoError>([&] { g.read_dataset<double>("x", {2, 2}); }, {path.string(), "/grp/x", "float32", "float64"});
  expect_error<IoError>([&] { g.read_dataset<int32_t>("x", {2, 2}); }, {"/grp/x", "int32"});
  expect_error<IoError>([&] { g.open_dataset("y"); }, {path.string(), "/grp/y", "missing"});
  expect_error<IoError>([&] { file.open_group("other"); }, {path.string(), "/other", "missing"});
  expect_error<IoError>([&] { file.attribute_int64("s"); }, {path.string(), "'s'", "string", "integer"});
  expect_error<IoError>([&] { file.attribute_string("absent"); }, {path.string(), "absent", "missing"});
  expect_error<IoError>([&] { file.open_dataset("grp"); }, {path.string(), "/grp"});
}

TEST(H5, OpeningGarbageIsAnIoErrorAndPrintsNothing) {
  test::TempDir dir("h5bad");
  test::write_text(dir / "bad.h5", std::string(4096, 'x'));
  ::testing::internal::CaptureStderr();
  expect_error<IoError>([&] { H5File::open(dir / "bad.h5"); }, {(dir / "bad.h5").string(), "H5Fopen"});
  expect_error<IoError>([&] { H5File::open(dir / "absent.h5"); }, {"absent.h5", "does not exist"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("HDF5-DIAG"), std::string::npos) << err;
}

/// Flips one byte of the first occurrence of `needle` in the file.
void corrupt_first(const std::filesystem::path& path, const std::string& needle) {
  std::string bytes = test::read_text(path);
  const auto pos = bytes.find(needle);
  ASSERT_NE(pos, std::string::npos) << "pattern not found in " << path;
  bytes[pos + needle.size() / 2] ^= 0x5a;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(H5, Fletcher32DetectsCorruptionAndVerifyFails) {
  test::TempDir dir("h5crc");
  const auto path = dir / "c.h5";
  std::vector<double> data(5000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = 1000.0 + static_cast<double>(i);
  const PublishedFile pub = publish_atomically(path, [&](const std::filesystem::path& tmp) {
    H5File file = H5File::create(tmp);
    file.write_dataset<double>("data", data, {5000});
    file.close();
  });
  EXPECT_FALSE(std::filesystem::exists(temp_path_for(path)));
  EXPECT_EQ(pub.sha256, sha256_file(path));
  EXPECT_NO_THROW(verify_h5_file(path, pub.sha256));
  EXPECT_NO_THROW(verify_h5_file(path, ""));
  expect_error<IoError>([&] { verify_h5_file(path, std::string(64, '0')); }, {path.string(), "SHA-256", pub.sha256});

  double probe = 1000.0 + 2500.0;
  std::string needle(reinterpret_cast<const char*>(&probe), sizeof probe);
  corrupt_first(path, needle);
  expect_error<IoError>([&] { H5File::open(path).read_dataset<double>("data", {5000}); }, {path.string(), "/data"});
  expect_error<IoError>([&] { verify_h5_file(path, ""); }, {path.string(), "/data"});
}

TEST(AtomicFile, TempFilesAndLeftovers) {
  test::TempDir dir("atomic");
  const auto final_path = dir / "x.h5";
  EXPECT_EQ(temp_path_for(final_path).string().rfind(final_path.string() + ".tmp.", 0), 0u);
  EXPECT_THROW(publish_atomically(final_path, [](const std::filesystem::path& tmp) {
                 H5File::create(tmp);
                 throw IoError("writer failed");
               }),
               IoError);
  EXPECT_FALSE(std::filesystem::exists(final_path));
  EXPECT_FALSE(std::filesystem::exists(temp_path_for(final_path)));
  expect_error<IoError>([&] { publish_atomically(final_path, [](const std::filesystem::path&) {}); }, {"did not create"});

  test::write_text(dir / "a.h5.tmp.123", "partial");
  test::write_text(dir / "b.safetensors.tmp.99", "partial");
  test::write_text(dir / "keep.tmp.txt", "not a leftover");
  test::write_text(dir / "keep.h5", "done");
  EXPECT_EQ(remove_stale_temp_files(dir.path()), 2);
  EXPECT_TRUE(std::filesystem::exists(dir / "keep.tmp.txt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "keep.h5"));
  EXPECT_FALSE(std::filesystem::exists(dir / "a.h5.tmp.123"));
}

}  // namespace
}  // namespace caldera::io::h5
