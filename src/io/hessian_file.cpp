#include "io/hessian_file.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "io/h5.h"

namespace caldera::io {
namespace {

using model::HessianInput;

constexpr const char* kFormatName = "caldera-hessians";
constexpr int64_t kSlabElements = int64_t{1} << 20;  // 8 MiB of doubles

int64_t packed_size(int64_t n) { return n * (n + 1) / 2; }

std::string where_input(const std::filesystem::path& path, HessianInput in) {
  return "Hessian file '" + path.string() + "', input '" + std::string(model::to_string(in)) + "'";
}

void write_input(const h5::H5File& f, HessianInput in, const HessianSum& s, int64_t layer) {
  const std::string name(model::to_string(in));
  CALDERA_CHECK(s.n >= 0 && s.sum.rows() == s.n && s.sum.cols() == s.n && static_cast<int64_t>(s.mu_sum.size()) == s.n,
                "layer ", layer, " input ", name, ": n = ", s.n, " but sum is ", s.sum.rows(), "x", s.sum.cols(),
                " and mu_sum has ", s.mu_sum.size(), " entries");
  CALDERA_CHECK(s.count >= 0, "layer ", layer, " input ", name, ": negative token count ", s.count);
  CALDERA_CHECK(static_cast<int64_t>(s.sum_abs.size()) == s.n && static_cast<int64_t>(s.max_abs.size()) == s.n,
                "layer ", layer, " input ", name, ": sum_abs and max_abs need n = ", s.n, " entries, found ",
                s.sum_abs.size(), " and ", s.max_abs.size());
  for (const auto* v : {&s.mu_sum, &s.sum_abs, &s.max_abs})
    for (std::size_t i = 0; i < v->size(); ++i)
      if (!std::isfinite((*v)[i]))
        raise<NumericError>("layer ", layer, " input ", name, ": ",
                            v == &s.mu_sum ? "mu_sum" : (v == &s.sum_abs ? "sum_abs" : "max_abs"), "[", i,
                            "] = ", (*v)[i], " is not finite");

  const h5::H5Group g = f.create_group(name);
  g.set_attribute("n", s.n);
  g.set_attribute("count", s.count);
  g.write_dataset<double>("mu_sum", s.mu_sum, {s.n});
  g.write_dataset<double>("sum_abs", s.sum_abs, {s.n});
  g.write_dataset<double>("max_abs", s.max_abs, {s.n});
  const h5::H5Dataset d = g.create_dataset<double>("sum", {packed_size(s.n)});
  std::vector<double> buf;
  buf.reserve(static_cast<std::size_t>(std::min(packed_size(s.n), kSlabElements + s.n)));
  int64_t slab_start = 0;  // packed offset of buf[0]
  for (int64_t i = 0; i < s.n; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      const double v = s.sum(i, j);
      if (!std::isfinite(v))
        raise<NumericError>("layer ", layer, " input ", name, ": sum(", i, ", ", j, ") = ", v, " is not finite");
      buf.push_back(v);
    }
    if (static_cast<int64_t>(buf.size()) >= kSlabElements || i == s.n - 1) {
      d.write_slab<double>(slab_start, static_cast<int64_t>(buf.size()), buf);
      slab_start += static_cast<int64_t>(buf.size());
      buf.clear();
    }
  }
}

}  // namespace

HessianSum HessianSum::zeros(int64_t n) {
  CALDERA_CHECK(n >= 0, "HessianSum::zeros: n = ", n);
  HessianSum s;
  s.n = n;
  s.sum = HostMatrix<double>(n, n);
  s.mu_sum.assign(static_cast<std::size_t>(n), 0.0);
  s.sum_abs.assign(static_cast<std::size_t>(n), 0.0);
  s.max_abs.assign(static_cast<std::size_t>(n), 0.0);
  return s;
}

std::filesystem::path hessian_file_path(const std::filesystem::path& workdir, int64_t layer) {
  char name[32];
  std::snprintf(name, sizeof name, "layer_%03lld.h5", static_cast<long long>(layer));
  return workdir / "hessians" / name;
}

PublishedFile write_hessian_file(const std::filesystem::path& path, const LayerHessians& h) {
  return publish_atomically(path, [&](const std::filesystem::path& tmp) {
    h5::H5File f = h5::H5File::create(tmp);
    f.set_attribute("format", kFormatName);
    f.set_attribute("format_version", kHessianFormatVersion);
    f.set_attribute("layer", h.meta.layer);
    f.set_attribute("model_fingerprint", h.meta.model_fingerprint);
    f.set_attribute("calibration_sha256", h.meta.calibration_sha256);
    f.set_attribute("seq_len", h.meta.seq_len);
    for (HessianInput in : model::kAllHessianInputs) write_input(f, in, h[in], h.meta.layer);
    f.close();
  });
}

namespace {

/// The file's format_version after checking the format name and that this build reads it.
int64_t checked_version(const h5::H5File& f, const std::filesystem::path& path) {
  const std::string format = f.attribute_string("format");
  if (format != kFormatName)
    raise<IoError>("Hessian file '", path.string(), "': format \"", format, "\", expected \"", kFormatName, "\"");
  const int64_t version = f.attribute_int64("format_version");
  if (version < kHessianOldestReadableVersion || version > kHessianFormatVersion)
    raise<IoError>("Hessian file '", path.string(), "': format_version ", version, ", this build reads versions ",
                   kHessianOldestReadableVersion, " to ", kHessianFormatVersion);
  return version;
}

}  // namespace

HessianFileMeta read_hessian_meta(const std::filesystem::path& path) {
  const h5::H5File f = h5::H5File::open(path);
  checked_version(f, path);
  HessianFileMeta m;
  m.layer = f.attribute_int64("layer");
  m.model_fingerprint = f.attribute_string("model_fingerprint");
  m.calibration_sha256 = f.attribute_string("calibration_sha256");
  m.seq_len = f.attribute_int64("seq_len");
  return m;
}

void check_hessian_meta(const std::filesystem::path& path, const HessianFileMeta& found, const HessianFileMeta& expected) {
  const std::string where = "Hessian file '" + path.string() + "'";
  if (found.layer != expected.layer) raise<IoError>(where, ": layer ", found.layer, ", expected ", expected.layer);
  if (found.model_fingerprint != expected.model_fingerprint)
    raise<IoError>(where, ": model_fingerprint ", found.model_fingerprint, ", expected ", expected.model_fingerprint,
                   " (computed from another model)");
  if (found.calibration_sha256 != expected.calibration_sha256)
    raise<IoError>(where, ": calibration_sha256 ", found.calibration_sha256, ", expected ",
                   expected.calibration_sha256, " (computed from other calibration data)");
  if (found.seq_len != expected.seq_len)
    raise<IoError>(where, ": seq_len ", found.seq_len, ", expected ", expected.seq_len);
}

HessianSum read_hessian_input(const std::filesystem::path& path, HessianInput input) {
  const std::string where = where_input(path, input);
  const h5::H5File f = h5::H5File::open(path);
  const int64_t version = checked_version(f, path);
  const h5::H5Group g = f.open_group(model::to_string(input));
  HessianSum s;
  s.n = g.attribute_int64("n");
  s.count = g.attribute_int64("count");
  if (s.n < 0 || s.n > (int64_t{1} << 20)) raise<IoError>(where, ": implausible n = ", s.n);
  if (s.count < 0) raise<IoError>(where, ": negative count ", s.count);
  s.mu_sum = g.read_dataset<double>("mu_sum", {s.n});
  if (version >= 2) {
    s.sum_abs = g.read_dataset<double>("sum_abs", {s.n});
    s.max_abs = g.read_dataset<double>("max_abs", {s.n});
  }
  const h5::H5Dataset d = g.open_dataset("sum");
  if (d.shape() != std::vector<int64_t>{packed_size(s.n)})
    raise<IoError>(d.describe(), ": ", d.shape().size() == 1 ? std::to_string(d.shape()[0]) : std::string("non-1-D"),
                   " elements, expected n(n+1)/2 = ", packed_size(s.n), " for n = ", s.n);
  s.sum = HostMatrix<double>(s.n, s.n);
  std::vector<double> buf;
  for (int64_t r0 = 0; r0 < s.n;) {
    int64_t r1 = r0 + 1;  // rows [r0, r1) in this slab
    while (r1 < s.n && packed_size(r1 + 1) - packed_size(r0) <= kSlabElements) ++r1;
    const int64_t first = packed_size(r0), count = packed_size(r1) - first;
    buf.resize(static_cast<std::size_t>(count));
    d.read_slab<double>(first, count, buf);
    const double* p = buf.data();
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j <= i; ++j, ++p) {
        if (!std::isfinite(*p)) raise<IoError>(d.describe(), ": non-finite value ", *p, " at (", i, ", ", j, ")");
        s.sum(i, j) = *p;
        s.sum(j, i) = *p;
      }
    r0 = r1;
  }
  for (const auto* v : {&s.mu_sum, &s.sum_abs, &s.max_abs})
    for (std::size_t i = 0; i < v->size(); ++i)
      if (!std::isfinite((*v)[i])) raise<IoError>(where, ": a per-channel statistic is not finite at ", i);
  return s;
}

LayerHessians read_hessian_file(const std::filesystem::path& path) {
  LayerHessians h;
  h.meta = read_hessian_meta(path);
  for (HessianInput in : model::kAllHessianInputs) h[in] = read_hessian_input(path, in);
  return h;
}

void verify_hessian_file(const std::filesystem::path& path, std::string_view expected_sha256,
                         const HessianFileMeta& expected) {
  h5::verify_h5_file(path, expected_sha256);
  check_hessian_meta(path, read_hessian_meta(path), expected);
  const h5::H5File f = h5::H5File::open(path);
  const int64_t version = checked_version(f, path);
  for (HessianInput in : model::kAllHessianInputs) {
    const h5::H5Group g = f.open_group(model::to_string(in));
    const int64_t n = g.attribute_int64("n");
    if (g.attribute_int64("count") < 0) raise<IoError>(where_input(path, in), ": negative count");
    if (g.open_dataset("sum").shape() != std::vector<int64_t>{packed_size(n)} ||
        g.open_dataset("mu_sum").shape() != std::vector<int64_t>{n})
      raise<IoError>(where_input(path, in), ": dataset sizes do not match n = ", n);
    if (version >= 2 && (g.open_dataset("sum_abs").shape() != std::vector<int64_t>{n} ||
                         g.open_dataset("max_abs").shape() != std::vector<int64_t>{n}))
      raise<IoError>(where_input(path, in), ": sum_abs/max_abs sizes do not match n = ", n);
  }
}

}  // namespace caldera::io
