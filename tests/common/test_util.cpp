#include "test_util.h"

#include <cstdlib>
#include <fstream>
#include <random>

namespace caldera::test {

std::filesystem::path data_dir() {
  if (const char* env = std::getenv("CALDERA_TEST_DATA"); env != nullptr && *env != '\0') return env;
  return CALDERA_SOURCE_TEST_DATA;
}

std::filesystem::path tiny_model_dir() { return data_dir() / "minillama-tiny"; }

std::vector<uint32_t> read_calib_tokens(int64_t n_seqs, int64_t seq_len) {
  const auto path = data_dir() / "calib.u32";
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<uint32_t> tokens(static_cast<size_t>(n_seqs * seq_len));
  in.read(reinterpret_cast<char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 4));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(tokens.size() * 4)) << path;
  return tokens;
}

std::filesystem::path small_model_dir() {
  if (const char* env = std::getenv("CALDERA_SMALL_MODEL"); env != nullptr && *env != '\0') return env;
  const std::filesystem::path candidates[] = {data_dir().parent_path().parent_path() / ".carry" / "minillama-small",
                                              std::filesystem::path("/tmp/caldera-models/minillama-small")};
  for (const auto& c : candidates)
    if (std::filesystem::exists(c / "config.json")) return c;
  return {};
}

std::filesystem::path make_temp_dir(const std::string& prefix) {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto p = std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(rd()));
    if (std::filesystem::create_directories(p)) return p;
  }
  throw std::runtime_error("make_temp_dir failed");
}

HostMatrix<float> random_normal(int64_t rows, int64_t cols, uint64_t seed) {
  const Rng rng = Rng(seed).stream({static_cast<uint64_t>(RngPurpose::kTestData)});
  HostMatrix<float> m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(rng.normal(static_cast<uint64_t>(i)));
  return m;
}

HostMatrix<double> random_normal_f64(int64_t rows, int64_t cols, uint64_t seed) {
  const Rng rng = Rng(seed).stream({static_cast<uint64_t>(RngPurpose::kTestData)});
  HostMatrix<double> m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = rng.normal(static_cast<uint64_t>(i));
  return m;
}

HostMatrix<double> random_spd(int64_t n, double condition, uint64_t seed) {
  // A = Q diag(d) Qᵀ with Q from the QR of a Gaussian matrix, on the CPU reference backend.
  auto& cpu = cpu_backend();
  auto q = cpu.upload(random_normal_f64(n, n, seed).cview(), "q");
  cpu.qr_orthonormalize(q.view());
  auto qd = cpu.clone(q.cview(), "qd");
  HostMatrix<double> d(1, n);
  for (int64_t p = 0; p < n; ++p)
    d(0, p) = n == 1 ? 1.0 : std::pow(condition, static_cast<double>(p) / static_cast<double>(n - 1));
  auto dd = cpu.upload(d.cview(), "d");
  cpu.mul_cols(qd.view(), dd.cview());
  auto a = cpu.make<double>(n, n, "a");
  cpu.gemm(linalg::Op::kNoTrans, linalg::Op::kTrans, 1.0, qd.cview(), q.cview(), 0.0, a.view());
  auto h = cpu.download(a);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) h(j, i) = h(i, j);  // exact symmetry
  return h;
}

linalg::Backend& cpu_backend() {
  static const std::unique_ptr<linalg::Backend> backend = linalg::make_backend(linalg::BackendKind::kCpu);
  return *backend;
}

HostMatrix<double> matmul(MatrixView<const double> a, MatrixView<const double> b, linalg::Op op_a, linalg::Op op_b) {
  auto& cpu = cpu_backend();
  auto da = cpu.upload(a, "a");
  auto db = cpu.upload(b, "b");
  const int64_t m = op_a == linalg::Op::kTrans ? a.cols : a.rows;
  const int64_t n = op_b == linalg::Op::kTrans ? b.rows : b.cols;
  auto dc = cpu.make<double>(m, n, "c");
  cpu.gemm(op_a, op_b, 1.0, da.cview(), db.cview(), 0.0, dc.view());
  return cpu.download(dc);
}

}  // namespace caldera::test
