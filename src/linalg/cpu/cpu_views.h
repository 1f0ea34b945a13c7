// Small helpers shared by the CPU backend's translation units.
#pragma once

#include "core/error.h"
#include "core/matrix.h"

namespace caldera::linalg::cpu {

/// Pointer to the data of a contiguous vector view (1×n, or n×1 with ld 1) of exactly n entries.
template <class T>
T* vector_data(MatrixView<T> v, int64_t n, const char* op) {
  CALDERA_CHECK(v.size() == n, op, ": vector of ", n, " entries expected, got ", v.rows, "x", v.cols);
  CALDERA_CHECK(v.rows == 1 || (v.cols == 1 && v.ld == 1), op, ": vector view must be contiguous (", v.rows, "x",
                v.cols, ", ld ", v.ld, ")");
  return v.data;
}

}  // namespace caldera::linalg::cpu
