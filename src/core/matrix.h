// Row-major matrix views and host owners (style C5).
//
// Layout: element (i, j) of a view lives at data[i * ld + j], ld >= cols. Every matrix in this
// project is row-major, as in safetensors; BLAS/LAPACK/cuBLAS column-major conventions are
// handled once, inside the linalg backends. A view does not know its memory space: a view handed
// to a Backend must point into memory of that backend (host for CPU, device for CUDA).
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/hd.h"

namespace caldera {

template <class T>
struct MatrixView {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;  ///< elements between the starts of consecutive rows

  constexpr MatrixView() = default;
  CALDERA_HD constexpr MatrixView(T* d, int64_t r, int64_t c, int64_t l) : data(d), rows(r), cols(c), ld(l) {}
  CALDERA_HD constexpr MatrixView(T* d, int64_t r, int64_t c) : data(d), rows(r), cols(c), ld(c) {}

  /// Implicit view-of-const conversion (only T -> const T, never between element types).
  CALDERA_HD constexpr operator MatrixView<const std::remove_const_t<T>>() const
    requires(!std::is_const_v<T>)
  {
    return MatrixView<const std::remove_const_t<T>>(data, rows, cols, ld);
  }

  CALDERA_HD T& operator()(int64_t i, int64_t j) const { return data[i * ld + j]; }
  CALDERA_HD T* row(int64_t i) const { return data + i * ld; }
  CALDERA_HD int64_t size() const { return rows * cols; }
  CALDERA_HD bool empty() const { return rows == 0 || cols == 0; }
  CALDERA_HD bool contiguous() const { return ld == cols || rows <= 1; }

  /// Sub-block [r0, r0+nr) x [c0, c0+nc); checked on the host.
  MatrixView block(int64_t r0, int64_t c0, int64_t nr, int64_t nc) const {
    CALDERA_CHECK(r0 >= 0 && c0 >= 0 && nr >= 0 && nc >= 0 && r0 + nr <= rows && c0 + nc <= cols,
                  "block [", r0, "+", nr, ", ", c0, "+", nc, ") outside ", rows, "x", cols);
    return MatrixView(data + r0 * ld + c0, nr, nc, ld);
  }
  MatrixView rows_range(int64_t r0, int64_t nr) const { return block(r0, 0, nr, cols); }
  MatrixView cols_range(int64_t c0, int64_t nc) const { return block(0, c0, rows, nc); }
};

/// Same shape?
template <class A, class B>
bool same_shape(const MatrixView<A>& a, const MatrixView<B>& b) {
  return a.rows == b.rows && a.cols == b.cols;
}

/// Owning row-major host matrix (contiguous, ld == cols), zero-initialised.
template <class T>
class HostMatrix {
 public:
  HostMatrix() = default;
  HostMatrix(int64_t rows, int64_t cols) : data_(checked_size(rows, cols)), rows_(rows), cols_(cols) {}
  HostMatrix(int64_t rows, int64_t cols, std::vector<T> data) : data_(std::move(data)), rows_(rows), cols_(cols) {
    CALDERA_CHECK(static_cast<int64_t>(data_.size()) == rows * cols, "HostMatrix: ", data_.size(),
                  " elements for ", rows, "x", cols);
  }
  /// Copies a (possibly strided) view.
  explicit HostMatrix(MatrixView<const T> v) : HostMatrix(v.rows, v.cols) {
    for (int64_t i = 0; i < v.rows; ++i)
      for (int64_t j = 0; j < v.cols; ++j) data_[i * cols_ + j] = v(i, j);
  }

  int64_t rows() const noexcept { return rows_; }
  int64_t cols() const noexcept { return cols_; }
  int64_t size() const noexcept { return rows_ * cols_; }
  T* data() noexcept { return data_.data(); }
  const T* data() const noexcept { return data_.data(); }
  std::vector<T>& storage() noexcept { return data_; }
  const std::vector<T>& storage() const noexcept { return data_; }

  T& operator()(int64_t i, int64_t j) { return data_[i * cols_ + j]; }
  const T& operator()(int64_t i, int64_t j) const { return data_[i * cols_ + j]; }

  MatrixView<T> view() noexcept { return MatrixView<T>(data_.data(), rows_, cols_, cols_); }
  MatrixView<const T> view() const noexcept { return MatrixView<const T>(data_.data(), rows_, cols_, cols_); }
  MatrixView<const T> cview() const noexcept { return view(); }

 private:
  static size_t checked_size(int64_t rows, int64_t cols) {
    CALDERA_CHECK(rows >= 0 && cols >= 0, "HostMatrix: negative shape ", rows, "x", cols);
    return static_cast<size_t>(rows) * static_cast<size_t>(cols);
  }
  std::vector<T> data_;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
};

}  // namespace caldera
