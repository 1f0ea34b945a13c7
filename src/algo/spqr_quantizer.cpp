// SpQR quantizer pieces (spqr.md §4-§6). See spqr_quantizer.h.
#include "algo/spqr_quantizer.h"

#include <limits>

#include "core/error.h"

namespace caldera::algo {

namespace {

// The §4.2 pair of a block with extremes lo <= hi, rounded to fp16 (pitfall 5): the scale first,
// then the zero point computed from the rounded scale so the block's min still maps to code 0.
StatPair fit_stat_pair(float lo, float hi, int bits, ScalarRange range) {
  MinMax f;
  scalar::grid_from_range(lo, hi, bits, ScalarSymmetry::kAsymmetric, range, ZeroPoint::kFloat, &f.scale, &f.zero);
  StatPair p;
  p.scale_f16 = f32_to_f16(f.scale);
  // grid_from_range's lower end: −z·s (the range possibly widened to 0, or [−1, 1] when degenerate).
  const float lo_used = -f.zero * f.scale;
  p.zero_f16 = f32_to_f16(-lo_used / f16_to_f32(p.scale_f16));
  return p;
}

bool representable(StatPair p) {
  const float s = f16_to_f32(p.scale_f16);
  return s > 0.0f && std::isfinite(f16_to_f32(p.zero_f16));
}

}  // namespace

StatPair quantize_statistics(std::span<const float> values, int bits, std::span<uint8_t> codes,
                             std::span<float> dequantized) {
  CALDERA_CHECK(!values.empty() && codes.size() == values.size() && dequantized.size() == values.size(),
                "quantize_statistics: ", values.size(), " values, ", codes.size(), " codes, ", dequantized.size(),
                " outputs");
  CALDERA_CHECK(bits >= 1 && bits <= 8, "quantize_statistics: statistic bits must be in 1..8, got ", bits);
  float lo = values[0], hi = values[0];
  for (float v : values) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  StatPair p = fit_stat_pair(lo, hi, bits, ScalarRange::kDataOnly);
  if (!representable(p)) p = fit_stat_pair(lo, hi, bits, ScalarRange::kIncludeZero);
  const float ss = f16_to_f32(p.scale_f16);
  const float sz = f16_to_f32(p.zero_f16);
  for (size_t k = 0; k < values.size(); ++k) {
    const uint32_t c = scalar::quantize(values[k], ss, sz, bits);
    codes[k] = static_cast<uint8_t>(c);
    dequantized[k] = scalar::dequantize(c, ss, sz);
  }
  return p;
}

void leave_one_out_reduction(std::span<const float> x, std::span<const float> d, int bits, std::span<float> r) {
  const size_t g = x.size();
  CALDERA_CHECK(g >= 1 && d.size() == g && r.size() == g, "leave_one_out_reduction: ", g, " values, ", d.size(),
                " diagonal entries, ", r.size(), " outputs");
  // Squared 1/d-weighted error of x[k] on the plain §4.1 grid fit on [lo, hi].
  auto term = [&](const MinMax& f, size_t k) {
    const float diff = (x[k] - scalar::dequantize(scalar::quantize(x[k], f.scale, f.zero, bits), f.scale, f.zero)) / d[k];
    return static_cast<double>(diff) * diff;
  };
  float lo = x[0], hi = x[0];
  for (float v : x) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const MinMax full = spqr_grid(lo, hi, bits);
  double base = 0.0;
  for (size_t k = 0; k < g; ++k) base += term(full, k);
  if (g == 1) {
    r[0] = static_cast<float>(base);
    return;
  }
  int64_t n_lo = 0, n_hi = 0;
  for (float v : x) {
    n_lo += v == lo;
    n_hi += v == hi;
  }
  for (size_t k = 0; k < g; ++k) {
    // Leaving out a weight that is not the group's only min or max leaves the grid unchanged, so
    // its LOO error is base minus its own term; only the extremes need a refit (O(g) per row).
    if (!((x[k] == lo && n_lo == 1) || (x[k] == hi && n_hi == 1))) {
      r[k] = static_cast<float>(term(full, k));
      continue;
    }
    float lo_k = std::numeric_limits<float>::infinity(), hi_k = -lo_k;
    for (size_t t = 0; t < g; ++t) {
      if (t == k) continue;
      lo_k = std::min(lo_k, x[t]);
      hi_k = std::max(hi_k, x[t]);
    }
    const MinMax f = spqr_grid(lo_k, hi_k, bits);
    double loo = 0.0;
    for (size_t t = 0; t < g; ++t)
      if (t != k) loo += term(f, t);
    r[k] = static_cast<float>(base - loo);
  }
}

double outlier_scale(MatrixView<const float> w, std::span<const float> d) {
  CALDERA_CHECK(static_cast<int64_t>(d.size()) == w.cols, "outlier_scale: ", d.size(), " diagonal entries for ",
                w.cols, " columns");
  if (w.rows < 2) return std::numeric_limits<double>::infinity();
  std::vector<double> mean(static_cast<size_t>(w.cols), 0.0), sq(static_cast<size_t>(w.cols), 0.0);
  for (int64_t i = 0; i < w.rows; ++i)
    for (int64_t j = 0; j < w.cols; ++j) mean[static_cast<size_t>(j)] += w(i, j);
  for (double& v : mean) v /= static_cast<double>(w.rows);
  for (int64_t i = 0; i < w.rows; ++i)
    for (int64_t j = 0; j < w.cols; ++j) {
      const double t = w(i, j) - mean[static_cast<size_t>(j)];
      sq[static_cast<size_t>(j)] += t * t;
    }
  double total = 0.0;
  for (int64_t j = 0; j < w.cols; ++j) {
    const double var = sq[static_cast<size_t>(j)] / static_cast<double>(w.rows - 1);
    const double dj = d[static_cast<size_t>(j)];
    total += var / (dj * dj);
  }
  return total / static_cast<double>(w.cols);
}

double spqr_average_bits(const SpqrFormat& format, double outlier_rate) {
  const double beta1 = static_cast<double>(format.group_size);
  const double beta2 = static_cast<double>(format.stat_group_size);
  double bits = format.bits + 2.0 * format.stat_bits / beta1;
  if (format.bilevel()) bits += 2.0 * (16 + 16) / (beta1 * beta2);
  return bits + 32.0 * outlier_rate;
}

double spqr_storage_bits(const SpqrFormat& format, int64_t m, int64_t n, int64_t outliers) {
  const double groups = static_cast<double>(format.column_groups(n));
  double bits = static_cast<double>(format.bits) * static_cast<double>(m) * static_cast<double>(n);
  bits += 2.0 * format.stat_bits * static_cast<double>(m) * groups;
  if (format.bilevel()) bits += 64.0 * static_cast<double>(format.row_blocks(m)) * groups;
  return bits + 32.0 * static_cast<double>(outliers);
}

double spqr_index_bits(int64_t m, int64_t n) {
  return 32.0 * static_cast<double>(m + 1) + (n <= 65536 ? 16.0 : 32.0) * static_cast<double>(n);
}

void SpqrEncoding::validate() const {
  const char* where = "SpQR encoding";
  const SpqrFormat& f = format;
  if (f.bits < 1 || f.bits > 16 || f.group_size < 1 || f.stat_group_size < 1 ||
      !(f.bilevel() ? f.stat_bits >= 1 : (f.stat_bits == 16 || f.stat_bits == 32)))
    raise<IoError>(where, ": invalid format bits=", f.bits, " stat_bits=", f.stat_bits, " group_size=", f.group_size,
                   " stat_group_size=", f.stat_group_size);
  if (rows < 1 || cols < 1) raise<IoError>(where, ": empty shape ", rows, "x", cols);
  const size_t mn = static_cast<size_t>(rows * cols);
  const size_t mg = static_cast<size_t>(rows * f.column_groups(cols));
  const size_t rg2 = static_cast<size_t>(2 * f.row_blocks(rows) * f.column_groups(cols));
  auto expect = [&](const char* name, size_t got, size_t want) {
    if (got != want) raise<IoError>(where, ": '", name, "' has ", got, " entries, expected ", want, " for ", rows, "x",
                                    cols, " (bits ", f.bits, ", stat bits ", f.stat_bits, ")");
  };
  expect("codes", codes.size(), mn);
  if (f.bilevel()) {
    expect("scale_codes", scale_codes.size(), mg);
    expect("zero_codes", zero_codes.size(), mg);
    expect("scale_stats", scale_stats.size(), rg2);
    expect("zero_stats", zero_stats.size(), rg2);
    const int stat_maxq = (1 << f.stat_bits) - 1;
    for (size_t k = 0; k < mg; ++k)
      if (int{scale_codes[k]} > stat_maxq || int{zero_codes[k]} > stat_maxq)
        raise<IoError>(where, ": statistic code above ", stat_maxq, " at entry ", k);
  } else {
    expect("scales", scales.size(), mg);
    expect("zeros", zeros.size(), mg);
  }
  const uint32_t maxq = f.maxq();
  for (size_t k = 0; k < mn; ++k)
    if (codes[k] > maxq) raise<IoError>(where, ": code ", codes[k], " above ", maxq, " at entry ", k);
  check_permutation(perm, cols, where);
  expect("outlier_row_ptr", row_ptr.size(), static_cast<size_t>(rows + 1));
  expect("outlier_residuals", outlier_residuals.size(), outlier_cols.size());
  if (row_ptr[0] != 0 || row_ptr[static_cast<size_t>(rows)] != static_cast<int32_t>(outlier_cols.size()))
    raise<IoError>(where, ": CSR row pointers must run from 0 to ", outlier_cols.size(), ", got ", row_ptr[0], "..",
                   row_ptr[static_cast<size_t>(rows)]);
  for (int64_t i = 0; i < rows; ++i) {
    const int32_t b = row_ptr[static_cast<size_t>(i)], e = row_ptr[static_cast<size_t>(i + 1)];
    if (e < b) raise<IoError>(where, ": CSR row pointers decrease at row ", i);
    for (int32_t k = b; k < e; ++k) {
      const int32_t c = outlier_cols[static_cast<size_t>(k)];
      if (c < 0 || c >= cols || (k > b && c <= outlier_cols[static_cast<size_t>(k - 1)]))
        raise<IoError>(where, ": outlier column ", c, " of row ", i, " out of range or not ascending");
    }
  }
}

HostMatrix<float> decode_permuted(const SpqrEncoding& enc) {
  enc.validate();
  const SpqrFormat& f = enc.format;
  const int64_t m = enc.rows, n = enc.cols, groups = f.column_groups(n);
  HostMatrix<float> out(m, n);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t r = i / f.stat_group_size;
    for (int64_t g = 0; g < groups; ++g) {
      const size_t sg = static_cast<size_t>(i * groups + g);
      float scale, zero;
      if (f.bilevel()) {
        const size_t st = static_cast<size_t>((r * groups + g) * 2);
        scale = scalar::dequantize(enc.scale_codes[sg], f16_to_f32(enc.scale_stats[st]), f16_to_f32(enc.scale_stats[st + 1]));
        zero = scalar::dequantize(enc.zero_codes[sg], f16_to_f32(enc.zero_stats[st]), f16_to_f32(enc.zero_stats[st + 1]));
      } else {
        scale = enc.scales[sg];
        zero = enc.zeros[sg];
      }
      const int64_t j1 = std::min(n, (g + 1) * f.group_size);
      for (int64_t j = g * f.group_size; j < j1; ++j)
        out(i, j) = scalar::dequantize(enc.codes[static_cast<size_t>(i * n + j)], scale, zero);
    }
    for (int32_t k = enc.row_ptr[static_cast<size_t>(i)]; k < enc.row_ptr[static_cast<size_t>(i + 1)]; ++k)
      out(i, enc.outlier_cols[static_cast<size_t>(k)]) += f16_to_f32(enc.outlier_residuals[static_cast<size_t>(k)]);
  }
  return out;
}

SpqrColumnQuantizer::SpqrColumnQuantizer(const SpqrFormat& format, int64_t rows, int64_t cols, double threshold,
                                         OutlierSelection selection)
    : format_(format), rows_(rows), cols_(cols), threshold_(threshold), selection_(selection),
      groups_(format.column_groups(cols)) {
  CALDERA_CHECK(rows > 0 && cols > 0, "SpqrColumnQuantizer: empty shape ", rows, "x", cols);
  CALDERA_CHECK(format.bits >= 1 && format.bits <= 16, "SpqrColumnQuantizer: bits must be 1..16, got ", format.bits);
  CALDERA_CHECK(format.bilevel() ? format.stat_bits >= 1 : (format.stat_bits == 16 || format.stat_bits == 32),
                "SpqrColumnQuantizer: stat bits must be 1..8, 16 or 32, got ", format.stat_bits);
  CALDERA_CHECK(!(threshold < 0), "SpqrColumnQuantizer: outlier threshold must be >= 0, got ", threshold);
  enc_.format = format;
  enc_.rows = rows;
  enc_.cols = cols;
  enc_.codes.assign(static_cast<size_t>(rows * cols), 0);
  const size_t mg = static_cast<size_t>(rows * groups_);
  if (format.bilevel()) {
    enc_.scale_codes.assign(mg, 0);
    enc_.zero_codes.assign(mg, 0);
    enc_.scale_stats.assign(static_cast<size_t>(2 * format.row_blocks(rows) * groups_), 0);
    enc_.zero_stats.assign(enc_.scale_stats.size(), 0);
  } else {
    enc_.scales.assign(mg, 0.0f);
    enc_.zeros.assign(mg, 0.0f);
  }
  scale_.assign(static_cast<size_t>(rows), 0.0f);
  zero_.assign(static_cast<size_t>(rows), 0.0f);
  row_outliers_.resize(static_cast<size_t>(rows));
}

void SpqrColumnQuantizer::begin_group(int64_t j0, MatrixView<const float> group, std::span<const float> d) {
  CALDERA_CHECK(j0 % format_.group_size == 0 && group.rows == rows_ && static_cast<int64_t>(d.size()) == group.cols &&
                    group.cols >= 1,
                "SpqrColumnQuantizer::begin_group: group at column ", j0, " of shape ", group.rows, "x", group.cols);
  const int64_t gi = j0 / format_.group_size;
  const int64_t g = group.cols;
  const int bits = format_.bits;
  const bool loo = std::isfinite(threshold_) && selection_ == OutlierSelection::kLeaveOneOut;
  std::vector<float> s(static_cast<size_t>(rows_)), z(static_cast<size_t>(rows_));

  // §4.1 first-order fit per row; with outliers on, §5.2 replaces LOO candidates by the mean of
  // the row's other weights in this group first, so candidates do not stretch min/max.
#pragma omp parallel if (rows_ * g >= (int64_t{1} << 16))
  {
    std::vector<float> reduction(static_cast<size_t>(g));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < rows_; ++i) {
      const std::span<const float> x(group.row(i), static_cast<size_t>(g));
      float lo = x[0], hi = x[0];
      if (loo) {
        leave_one_out_reduction(x, d, bits, reduction);
        double sum = 0.0;
        int64_t count = 0;
        for (int64_t k = 0; k < g; ++k)
          if (!(reduction[static_cast<size_t>(k)] > threshold_)) {
            sum += x[static_cast<size_t>(k)];
            ++count;
          }
        const float fill = static_cast<float>(sum / static_cast<double>(std::max<int64_t>(count, 1)));
        lo = hi = reduction[0] > threshold_ ? fill : x[0];
        for (int64_t k = 0; k < g; ++k) {
          const float v = reduction[static_cast<size_t>(k)] > threshold_ ? fill : x[static_cast<size_t>(k)];
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      } else {
        for (float v : x) {
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
      const MinMax fit = spqr_grid(lo, hi, bits);
      s[static_cast<size_t>(i)] = fit.scale;
      z[static_cast<size_t>(i)] = fit.zero;
    }
  }

  if (format_.bilevel()) {
    // §4.2: quantize scales and zeros of β2 consecutive rows with stat_bits each.
    const int64_t blocks = format_.row_blocks(rows_);
    std::vector<uint8_t> codes(static_cast<size_t>(format_.stat_group_size));
    for (int64_t r = 0; r < blocks; ++r) {
      const int64_t i0 = r * format_.stat_group_size;
      const size_t len = static_cast<size_t>(std::min(format_.stat_group_size, rows_ - i0));
      const size_t st = static_cast<size_t>((r * groups_ + gi) * 2);
      const std::span<uint8_t> cspan(codes.data(), len);
      const StatPair ps = quantize_statistics(std::span<const float>(s).subspan(static_cast<size_t>(i0), len),
                                              format_.stat_bits, cspan,
                                              std::span<float>(scale_).subspan(static_cast<size_t>(i0), len));
      for (size_t k = 0; k < len; ++k) enc_.scale_codes[static_cast<size_t>((i0 + static_cast<int64_t>(k)) * groups_ + gi)] = codes[k];
      const StatPair pz = quantize_statistics(std::span<const float>(z).subspan(static_cast<size_t>(i0), len),
                                              format_.stat_bits, cspan,
                                              std::span<float>(zero_).subspan(static_cast<size_t>(i0), len));
      for (size_t k = 0; k < len; ++k) enc_.zero_codes[static_cast<size_t>((i0 + static_cast<int64_t>(k)) * groups_ + gi)] = codes[k];
      enc_.scale_stats[st] = ps.scale_f16;
      enc_.scale_stats[st + 1] = ps.zero_f16;
      enc_.zero_stats[st] = pz.scale_f16;
      enc_.zero_stats[st + 1] = pz.zero_f16;
    }
  } else {
    for (int64_t i = 0; i < rows_; ++i) {
      const size_t k = static_cast<size_t>(i);
      scale_[k] = format_.stat_bits == 16 ? f16_to_f32(f32_to_f16(s[k])) : s[k];
      zero_[k] = format_.stat_bits == 16 ? f16_to_f32(f32_to_f16(z[k])) : z[k];
      enc_.scales[static_cast<size_t>(i * groups_ + gi)] = scale_[k];
      enc_.zeros[static_cast<size_t>(i * groups_ + gi)] = zero_[k];
    }
  }
}

float SpqrColumnQuantizer::quantize(int64_t row, int64_t col, float w, float d) {
  const size_t i = static_cast<size_t>(row);
  const float s = scale_[i], z = zero_[i];
  const int bits = format_.bits;
  uint32_t code = scalar::quantize(w, s, z, bits);
  float w_hat = scalar::dequantize(code, s, z);
  // §5.3: a weight whose scaled squared error exceeds θ stays in fp16 (the GPTQ-updated value);
  // its dense code is that of 0.0 and the stored residual makes Deq(code) + residual == ŵ.
  if (std::isfinite(threshold_)) {
    const float e = (w - w_hat) / d;
    if (static_cast<double>(e) * e > threshold_) {
      code = scalar::quantize(0.0f, s, z, bits);
      const float base = scalar::dequantize(code, s, z);
      const uint16_t residual = f32_to_f16(w - base);
      w_hat = base + f16_to_f32(residual);
      row_outliers_[i].push_back(Outlier{static_cast<int32_t>(col), residual});
    }
  }
  enc_.codes[static_cast<size_t>(row * cols_ + col)] = static_cast<uint16_t>(code);
  return w_hat;
}

int64_t SpqrColumnQuantizer::outliers() const {
  int64_t total = 0;
  for (const auto& r : row_outliers_) total += static_cast<int64_t>(r.size());
  return total;
}

SpqrEncoding SpqrColumnQuantizer::release_encoding(std::span<const int32_t> perm) {
  SpqrEncoding out = std::move(enc_);
  out.perm.assign(perm.begin(), perm.end());
  out.row_ptr.assign(static_cast<size_t>(rows_ + 1), 0);
  const int64_t nnz = outliers();
  CALDERA_CHECK(nnz <= std::numeric_limits<int32_t>::max(), "SpQR: ", nnz, " outliers exceed int32 row pointers");
  out.outlier_cols.reserve(static_cast<size_t>(nnz));
  out.outlier_residuals.reserve(static_cast<size_t>(nnz));
  for (int64_t i = 0; i < rows_; ++i) {
    for (const Outlier& o : row_outliers_[static_cast<size_t>(i)]) {
      out.outlier_cols.push_back(o.col);
      out.outlier_residuals.push_back(o.residual);
    }
    out.row_ptr[static_cast<size_t>(i + 1)] = static_cast<int32_t>(out.outlier_cols.size());
  }
  row_outliers_.assign(static_cast<size_t>(rows_), {});
  return out;
}

}  // namespace caldera::algo
