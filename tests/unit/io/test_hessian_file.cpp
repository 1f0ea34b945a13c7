// Hessian files (hessians/layer_NNN.h5): exact round trips, the packed order of spec §6.4, meta
// checks, corruption and malformed files.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "io/h5.h"
#include "io/hessian_file.h"
#include "io/sha256.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

using model::HessianInput;
using test::expect_error;

/// Sums of `tokens` random rows x of length n (what phase 1 accumulates).
HessianSum random_sum(int64_t n, int64_t tokens, uint64_t seed) {
  const auto x = test::random_normal_f64(tokens, n, seed);
  HessianSum s = HessianSum::zeros(n);
  s.count = tokens;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < n; ++i) {
      s.mu_sum[static_cast<std::size_t>(i)] += x(t, i);
      s.sum_abs[static_cast<std::size_t>(i)] += std::abs(x(t, i));
      s.max_abs[static_cast<std::size_t>(i)] = std::max(s.max_abs[static_cast<std::size_t>(i)], std::abs(x(t, i)));
      for (int64_t j = 0; j < n; ++j) s.sum(i, j) += x(t, i) * x(t, j);
    }
  return s;
}

HessianFileMeta sample_meta(int64_t layer) {
  return {layer, std::string(64, 'a'), std::string(64, 'b'), 512};
}

LayerHessians sample_layer(int64_t layer, int64_t n_attn, int64_t n_mlp) {
  LayerHessians h;
  h.meta = sample_meta(layer);
  h[HessianInput::kQkv] = random_sum(n_attn, 40, 1);
  h[HessianInput::kO] = random_sum(n_attn, 40, 2);
  h[HessianInput::kUp] = random_sum(n_attn, 40, 3);
  h[HessianInput::kDown] = random_sum(n_mlp, 40, 4);
  return h;
}

void expect_same(const HessianSum& a, const HessianSum& b) {
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.mu_sum, b.mu_sum);
  EXPECT_EQ(a.sum_abs, b.sum_abs);
  EXPECT_EQ(a.max_abs, b.max_abs);
  EXPECT_EQ(a.sum.storage(), b.sum.storage());  // bit-exact, both triangles
}

TEST(HessianFile, PathFormat) {
  EXPECT_EQ(hessian_file_path("/w", 7), std::filesystem::path("/w/hessians/layer_007.h5"));
  EXPECT_EQ(hessian_file_path("/w", 1234), std::filesystem::path("/w/hessians/layer_1234.h5"));
}

TEST(HessianFile, RoundTripIsExact) {
  test::TempDir dir("hess");
  const auto h = sample_layer(3, 6, 11);
  const auto path = dir / "layer_003.h5";
  const PublishedFile pub = write_hessian_file(path, h);
  EXPECT_EQ(pub.sha256, sha256_file(path));
  const LayerHessians back = read_hessian_file(path);
  EXPECT_EQ(back.meta, h.meta);
  for (HessianInput in : model::kAllHessianInputs) expect_same(back[in], h[in]);
  expect_same(read_hessian_input(path, HessianInput::kDown), h[HessianInput::kDown]);
  EXPECT_NO_THROW(verify_hessian_file(path, pub.sha256, h.meta));
}

TEST(HessianFile, PackedLowerTriangleInRowMajorOrder) {
  test::TempDir dir("pack");
  LayerHessians h;
  h.meta = sample_meta(0);
  for (HessianInput in : model::kAllHessianInputs) h[in] = HessianSum::zeros(3);
  auto& s = h[HessianInput::kO];
  // Lower triangle values encode their position: (i, j) -> 10 i + j; the upper triangle mirrors it.
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j <= i; ++j) s.sum(i, j) = s.sum(j, i) = 10.0 * static_cast<double>(i) + static_cast<double>(j);
  write_hessian_file(dir / "l.h5", h);
  const auto packed = h5::H5File::open(dir / "l.h5").open_group("o").read_dataset<double>("sum", {6});
  EXPECT_EQ(packed, (std::vector<double>{0, 10, 11, 20, 21, 22}));  // (0,0),(1,0),(1,1),(2,0),(2,1),(2,2)
}

TEST(HessianFile, LargeInputCrossesSlabs) {
  test::TempDir dir("big");
  LayerHessians h;
  h.meta = sample_meta(1);
  for (HessianInput in : model::kAllHessianInputs) h[in] = HessianSum::zeros(2);
  const int64_t n = 1600;  // 1.28 M packed values: more than one 1 M-element slab
  HessianSum& s = h[HessianInput::kDown];
  s = HessianSum::zeros(n);
  s.count = 123;
  for (int64_t i = 0; i < n; ++i) {
    s.mu_sum[static_cast<std::size_t>(i)] = static_cast<double>(i) * 0.5;
    for (int64_t j = 0; j <= i; ++j) s.sum(i, j) = s.sum(j, i) = std::sin(static_cast<double>(i * n + j));
  }
  write_hessian_file(dir / "l.h5", h);
  expect_same(read_hessian_input(dir / "l.h5", HessianInput::kDown), s);
}

TEST(HessianFile, MetaMismatchNamesTheField) {
  test::TempDir dir("meta");
  const auto h = sample_layer(2, 4, 5);
  const auto path = dir / "l.h5";
  const auto pub = write_hessian_file(path, h);
  HessianFileMeta other = h.meta;
  other.calibration_sha256 = std::string(64, 'c');
  expect_error<IoError>([&] { verify_hessian_file(path, pub.sha256, other); }, {path.string(), "calibration_sha256"});
  other = h.meta;
  other.model_fingerprint = "x";
  expect_error<IoError>([&] { check_hessian_meta(path, read_hessian_meta(path), other); }, {"model_fingerprint"});
  other = h.meta;
  other.seq_len = 4096;
  expect_error<IoError>([&] { check_hessian_meta(path, read_hessian_meta(path), other); }, {"seq_len 512", "4096"});
  other = h.meta;
  other.layer = 9;
  expect_error<IoError>([&] { check_hessian_meta(path, read_hessian_meta(path), other); }, {"layer 2", "expected 9"});
}

TEST(HessianFile, NonFiniteAndInconsistentSumsAreRejectedOnWrite) {
  test::TempDir dir("nonfinite");
  auto h = sample_layer(5, 3, 4);
  h[HessianInput::kUp].sum(2, 1) = NAN;
  expect_error<NumericError>([&] { write_hessian_file(dir / "l.h5", h); }, {"layer 5", "up", "sum(2, 1)"});
  EXPECT_FALSE(std::filesystem::exists(dir / "l.h5"));
  EXPECT_FALSE(std::filesystem::exists(temp_path_for(dir / "l.h5")));
  h = sample_layer(5, 3, 4);
  h[HessianInput::kQkv].mu_sum.pop_back();
  EXPECT_THROW(write_hessian_file(dir / "l.h5", h), Error);
}

TEST(HessianFile, CorruptionIsDetected) {
  test::TempDir dir("corrupt");
  auto h = sample_layer(0, 4, 4);
  h[HessianInput::kDown].sum(3, 2) = h[HessianInput::kDown].sum(2, 3) = 12345.678;  // findable bytes
  const auto path = dir / "l.h5";
  const auto pub = write_hessian_file(path, h);
  std::string bytes = test::read_text(path);
  const double probe = 12345.678;
  const auto pos = bytes.find(std::string(reinterpret_cast<const char*>(&probe), 8));
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 3] ^= 0x10;
  test::write_text(path, bytes);
  expect_error<IoError>([&] { verify_hessian_file(path, "", h.meta); }, {path.string(), "/down/sum"});
  expect_error<IoError>([&] { verify_hessian_file(path, pub.sha256, h.meta); }, {path.string(), "SHA-256"});
  expect_error<IoError>([&] { read_hessian_input(path, HessianInput::kDown); }, {path.string(), "/down/sum"});
}

TEST(HessianFile, MalformedFilesAreIoErrors) {
  test::TempDir dir("malformed");
  const auto path = dir / "l.h5";
  // n says 5 but the packed sum holds 6 = 3·4/2 values (a version-1 file: no sum_abs / max_abs).
  {
    h5::H5File f = h5::H5File::create(path);
    f.set_attribute("format", "caldera-hessians");
    f.set_attribute("format_version", int64_t{1});
    for (const char* a : {"model_fingerprint", "calibration_sha256"}) f.set_attribute(a, "x");
    f.set_attribute("layer", int64_t{0});
    f.set_attribute("seq_len", int64_t{8});
    for (HessianInput in : model::kAllHessianInputs) {
      const auto g = f.create_group(model::to_string(in));
      g.set_attribute("n", int64_t{in == HessianInput::kO ? 5 : 3});
      g.set_attribute("count", int64_t{1});
      g.write_dataset<double>("sum", std::vector<double>(6, 1.0), {6});
      g.write_dataset<double>("mu_sum", std::vector<double>(3, 1.0), {3});
    }
  }
  EXPECT_NO_THROW(read_hessian_input(path, HessianInput::kQkv));
  // Version 1 is still read; its ASVD statistics are absent (empty), not invented.
  EXPECT_TRUE(read_hessian_input(path, HessianInput::kQkv).sum_abs.empty());
  EXPECT_TRUE(read_hessian_input(path, HessianInput::kQkv).max_abs.empty());
  expect_error<IoError>([&] { read_hessian_input(path, HessianInput::kO); }, {path.string(), "/o/mu_sum"});
  expect_error<IoError>([&] { verify_hessian_file(path, "", read_hessian_meta(path)); }, {path.string(), "'o'"});
  // Another format version.
  {
    h5::H5File f = h5::H5File::open(path, h5::FileMode::kReadWrite);
    f.set_attribute("format_version", int64_t{99});
  }
  expect_error<IoError>([&] { read_hessian_meta(path); }, {path.string(), "format_version 99"});
  // Not a Hessian file at all.
  test::write_text(path, "not hdf5");
  expect_error<IoError>([&] { read_hessian_file(path); }, {path.string()});
}

}  // namespace
}  // namespace caldera::io
