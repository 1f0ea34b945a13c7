#include "algo/factor_quant.h"

namespace caldera::algo {

std::string_view to_string(FactorFormat f) noexcept { return f == FactorFormat::kE8p ? "e8p" : "uniform"; }
std::string_view to_string(FactorScaleMode s) noexcept {
  return s == FactorScaleMode::kPerTensor ? "per-tensor" : "per-row";
}

namespace {
template <class T>
void copy_matrix(linalg::Backend& backend, const linalg::Matrix<T>& src, linalg::Matrix<T>& dst, const char* label) {
  if (dst.rows() != src.rows() || dst.cols() != src.cols()) dst = linalg::Matrix<T>(backend, src.rows(), src.cols(), label);
  backend.copy(src.cview(), dst.view());
}
}  // namespace

void copy_factor(linalg::Backend& backend, const QuantizedFactor& src, QuantizedFactor& dst) {
  copy_matrix(backend, src.values, dst.values, "factor.values");
  copy_matrix(backend, src.codes, dst.codes, "factor.codes");
  copy_matrix(backend, src.scales, dst.scales, "factor.scales");
}

}  // namespace caldera::algo
