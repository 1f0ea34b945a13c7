#include "algo/estimate.h"

#include <algorithm>

#include "algo/method.h"
#include "core/error.h"

namespace caldera::algo {

void MemoryTally::Hold::release() noexcept {
  if (tally_ != nullptr) {
    auto it = tally_->live_.find(id_);
    if (it != tally_->live_.end()) {
      const Live live = it->second;
      tally_->live_.erase(it);
      tally_->add(id_, live, -1);
    }
  }
  tally_ = nullptr;
  bytes_ = 0;
}

MemoryTally::Hold MemoryTally::hold(MemorySpace space, int64_t bytes, std::string label) {
  CALDERA_CHECK(bytes >= 0, "MemoryTally: negative allocation of ", bytes, " bytes for '", label, "'");
  const int64_t id = next_id_++;
  Live live{label.empty() ? std::string("other") : std::move(label), space, bytes};
  live_.emplace(id, live);
  add(id, live, +1);
  return Hold(this, id, bytes);
}

MemoryTally::Breakdown MemoryTally::snapshot(int space_mask, const std::string& extra_label,
                                             int64_t extra_bytes) const {
  std::map<std::string, int64_t> by_label;
  for (const auto& [id, live] : live_)
    if ((space_mask & (live.space == MemorySpace::kBackend ? 1 : 2)) != 0 && live.bytes > 0)
      by_label[live.label] += live.bytes;
  if (extra_bytes > 0) by_label[extra_label] += extra_bytes;
  Breakdown out(by_label.begin(), by_label.end());
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

void MemoryTally::add(int64_t id, const Live& live, int sign) {
  (void)id;
  (live.space == MemorySpace::kBackend ? current_backend_ : current_host_) += sign * live.bytes;
  if (sign < 0) return;
  if (current_backend_ > peaks_.backend) {
    peaks_.backend = current_backend_;
    at_backend_peak_ = snapshot(1, {}, 0);
  }
  if (current_host_ > peaks_.host) {
    peaks_.host = current_host_;
    at_host_peak_ = snapshot(2, {}, 0);
  }
  if (current_backend_ + current_host_ > peaks_.combined) {
    peaks_.combined = current_backend_ + current_host_;
    at_combined_peak_ = snapshot(3, {}, 0);
  }
}

void MemoryTally::nest(const MemoryPeaks& inner, const std::string& label) {
  if (current_backend_ + inner.backend > peaks_.backend) {
    peaks_.backend = current_backend_ + inner.backend;
    at_backend_peak_ = snapshot(1, label, inner.backend);
  }
  if (current_host_ + inner.host > peaks_.host) {
    peaks_.host = current_host_ + inner.host;
    at_host_peak_ = snapshot(2, label, inner.host);
  }
  if (current_backend_ + current_host_ + inner.combined > peaks_.combined) {
    peaks_.combined = current_backend_ + current_host_ + inner.combined;
    at_combined_peak_ = snapshot(3, label, inner.combined);
  }
}

WorkEstimate& WorkEstimate::operator+=(const WorkEstimate& o) {
  gemm_flops += o.gemm_flops;
  fp64_flops += o.fp64_flops;
  eigh_f64_n3 += o.eigh_f64_n3;
  eigh_f32_n3 += o.eigh_f32_n3;
  cholesky_n3 += o.cholesky_n3;
  rounded_weights += o.rounded_weights;
  memory_bytes += o.memory_bytes;
  return *this;
}

WorkEstimate WorkEstimate::scaled(double f) const {
  WorkEstimate w = *this;
  w.gemm_flops *= f;
  w.fp64_flops *= f;
  w.eigh_f64_n3 *= f;
  w.eigh_f32_n3 *= f;
  w.cholesky_n3 *= f;
  w.rounded_weights *= f;
  w.memory_bytes *= f;
  return w;
}

void touch_eigh_workspace(MemoryTally& tally, linalg::BackendKind kind, int64_t n, int64_t elem_bytes) {
  const int64_t bytes = (1 + 6 * n + 2 * n * n) * elem_bytes;
  tally.touch(kind == linalg::BackendKind::kCuda ? MemorySpace::kBackend : MemorySpace::kHost, bytes,
              "eigensolver workspace");
}

void touch_gram_widen(MemoryTally& tally, linalg::BackendKind kind, int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0) return;
  if (kind == linalg::BackendKind::kCuda) {
    const int64_t chunk = std::clamp<int64_t>((int64_t{256} << 20) / (n * 8), 1, rows);
    tally.touch(MemorySpace::kBackend, chunk * n * 8, "Gram widening buffer");
  } else {
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(rows, (int64_t{1} << 24) / n));
    tally.touch(MemorySpace::kHost, chunk * n * 8, "Gram widening buffer");
  }
}

UnitEstimate Method::estimate(int64_t m, int64_t n, linalg::BackendKind kind) const {
  (void)kind;
  MemoryTally t;
  {
    auto h64 = t.host(n, n, 8, "H (fp64)");
    auto h32 = t.host(n, n, 4, "H (fp32)");
    auto w = t.backend(m, n, 6 * 4, "W and working copies");
    auto h = t.backend(n, n, 3 * 4, "H copies");
  }
  UnitEstimate e;
  e.memory = t.peaks();
  const double mn = static_cast<double>(m) * static_cast<double>(n);
  e.work.gemm_flops = 20.0 * mn * static_cast<double>(n);
  e.work.rounded_weights = mn;
  e.work.memory_bytes = 10.0 * 4.0 * mn;
  e.result_bytes = m * n / 2;
  e.modeled = false;
  return e;
}

}  // namespace caldera::algo
