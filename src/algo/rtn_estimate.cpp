// RtnMethod::estimate (caldera-dist plan): a replay of the allocations of RtnMethod::compress
// (algo/rtn.cpp) and quant::group_quantize, in program order, and its operation counts.
#include "algo/rtn.h"

namespace caldera::algo {

UnitEstimate RtnMethod::estimate(int64_t m, int64_t n, linalg::BackendKind kind) const {
  (void)kind;
  const int64_t group = params_.group_size == 0 ? n : params_.group_size;
  const int64_t groups = (n + group - 1) / group;
  const int64_t packed = m * ((n * params_.bits + 31) / 32) * 4;
  MemoryTally t;
  auto w = t.backend(m, n, 4);
  // group_quantize: scale, zero, codes, xhat (kept in `fitted` until the end).
  auto fit_scale = t.backend(m, groups, 4);
  auto fit_zero = t.backend(m, groups, 4);
  auto fit_codes = t.backend(m, n, 1);
  auto fit_xhat = t.backend(m, n, 4);
  auto s = t.host(m, groups, 4);
  auto z = t.host(m, groups, 4);
  auto ds = t.backend(m, groups, 4);
  auto dz = t.backend(m, groups, 4);
  auto codes = t.backend(m, n, 1);
  auto w_hat = t.backend(m, n, 4);
  auto h64 = t.host(n, n, 8);
  auto h32 = t.host(n, n, 4);
  auto h = t.backend(n, n, 4);
  auto diff = t.backend(m, n, 4);
  auto diff_h = t.backend(m, n, 4);
  {
    auto codes_host = t.host(m, n, 1);
    auto packed_host = t.host(1, packed, 1);
    auto tensors = t.host(1, packed + 2 * m * groups * 2, 1);
  }
  UnitEstimate e;
  e.memory = t.peaks();
  const double mn = static_cast<double>(m) * static_cast<double>(n);
  e.work.gemm_flops = 2.0 * mn * static_cast<double>(n) * 2.0;  // ActivationErrorMeter: W·H and ΔW·H
  e.work.rounded_weights = 2.0 * mn;
  e.work.memory_bytes = 12.0 * 4.0 * mn + 3.0 * 8.0 * static_cast<double>(n) * static_cast<double>(n);
  e.result_bytes = packed + 2 * m * groups * 2;
  return e;
}

}  // namespace caldera::algo
