// A named collection of typed n-dimensional host tensors: the neutral currency between compression
// methods (which produce codes, scales, factors, signs), unit checkpoint files (HDF5) and the
// exported model (safetensors). Row-major, little-endian element bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/matrix.h"

namespace caldera {

struct Tensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  ///< product(shape) * dtype_size(dtype) bytes

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  /// Typed pointer; throws when T's size does not match the dtype.
  template <class T>
  const T* as() const {
    CALDERA_CHECK(sizeof(T) == static_cast<size_t>(dtype_size(dtype)), "Tensor::as: element size ", sizeof(T),
                  " vs dtype ", dtype_name(dtype));
    return reinterpret_cast<const T*>(bytes.data());
  }
  template <class T>
  T* as_mut() {
    CALDERA_CHECK(sizeof(T) == static_cast<size_t>(dtype_size(dtype)), "Tensor::as_mut: element size ", sizeof(T),
                  " vs dtype ", dtype_name(dtype));
    return reinterpret_cast<T*>(bytes.data());
  }
  /// Row-major 2-D view (1-D tensors are 1×n, scalars 1×1).
  template <class T>
  MatrixView<const T> matrix() const {
    const int64_t rows = shape.size() >= 2 ? shape[0] : 1;
    return MatrixView<const T>(as<T>(), rows, rows == 0 ? 0 : numel() / rows);
  }
};

/// Builds a tensor from typed data.
template <class T>
Tensor make_tensor(DType dtype, std::vector<int64_t> shape, const T* data) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  CALDERA_CHECK(sizeof(T) == static_cast<size_t>(dtype_size(dtype)), "make_tensor: element size ", sizeof(T),
                " vs dtype ", dtype_name(dtype));
  t.bytes.resize(static_cast<size_t>(t.numel()) * sizeof(T));
  if (!t.bytes.empty()) std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}
template <class T>
Tensor make_tensor(DType dtype, const HostMatrix<T>& m) {
  return make_tensor<T>(dtype, {m.rows(), m.cols()}, m.data());
}
template <class T>
Tensor make_vector_tensor(DType dtype, const std::vector<T>& v) {
  return make_tensor<T>(dtype, {static_cast<int64_t>(v.size())}, v.data());
}
inline Tensor make_scalar_tensor(double value) { return make_tensor<double>(DType::kF64, {}, &value); }

/// Name -> tensor, ordered by name (deterministic iteration for byte-identical outputs).
using TensorMap = std::map<std::string, Tensor>;

/// The tensor `name`, or an Error naming the missing key and `context`.
inline const Tensor& require_tensor(const TensorMap& map, const std::string& name, const std::string& context) {
  auto it = map.find(name);
  if (it == map.end()) raise<Error>(context, ": tensor '", name, "' is missing");
  return it->second;
}

}  // namespace caldera
