// Internal helpers of the GPTQ and SpQR methods: building and checking the tensors of a unit.
// Unit tensors are read back from files, so every read checks dtype and shape and throws
// IoError naming the tensor and the method.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor_map.h"
#include "quant/scalar.h"

namespace caldera::algo::detail {

/// The tensor `name` with exactly this dtype and shape, or IoError naming both.
inline const Tensor& expect_tensor(const TensorMap& map, const std::string& name, DType dtype,
                                   const std::vector<int64_t>& shape, const std::string& context) {
  auto it = map.find(name);
  if (it == map.end()) raise<IoError>(context, ": tensor '", name, "' is missing");
  const Tensor& t = it->second;
  if (t.dtype != dtype || t.shape != shape) {
    auto dims = [](const std::vector<int64_t>& s) {
      std::ostringstream os;
      for (size_t k = 0; k < s.size(); ++k) os << (k ? "," : "") << s[k];
      return os.str();
    };
    raise<IoError>(context, ": tensor '", name, "' must be ", dtype_name(dtype), " [", dims(shape), "], found ",
                   dtype_name(t.dtype), " [", dims(t.shape), "]");
  }
  if (t.bytes.size() != static_cast<size_t>(t.numel() * dtype_size(t.dtype)))
    raise<IoError>(context, ": tensor '", name, "' holds ", t.bytes.size(), " bytes for ", t.numel(), " elements");
  return t;
}

/// An I64 scalar tensor (shape []): the metadata of a unit (format_version, bits, group sizes).
inline Tensor int_scalar_tensor(int64_t value) { return make_tensor<int64_t>(DType::kI64, {}, &value); }

/// Value of the I64 scalar tensor `name` within [lo, hi], or IoError.
inline int64_t expect_int_scalar(const TensorMap& map, const std::string& name, int64_t lo, int64_t hi,
                                 const std::string& context) {
  const int64_t v = *expect_tensor(map, name, DType::kI64, {}, context).as<int64_t>();
  if (v < lo || v > hi) raise<IoError>(context, ": scalar '", name, "' must be in [", lo, ", ", hi, "], found ", v);
  return v;
}

/// The unit's {rows, cols} from its I64 [2] tensor "shape" (each in [1, 2^31)), or IoError.
inline std::pair<int64_t, int64_t> expect_shape(const TensorMap& map, const std::string& context) {
  const int64_t* s = expect_tensor(map, "shape", DType::kI64, {2}, context).as<int64_t>();
  constexpr int64_t kMax = int64_t{1} << 31;
  if (s[0] < 1 || s[1] < 1 || s[0] >= kMax || s[1] >= kMax)
    raise<IoError>(context, ": tensor 'shape' must hold two dimensions in [1, 2^31), found ", s[0], "x", s[1]);
  return {s[0], s[1]};
}

/// Copy of a tensor's elements as a vector of T (the dtype size must match T).
template <class T>
std::vector<T> tensor_values(const Tensor& t) {
  const T* p = t.as<T>();
  return std::vector<T>(p, p + t.numel());
}

/// Codes (rows×cols row-major, each < 2^bits, bits 1..8) bit-packed by quant::pack_bits (LSB
/// first, each row starting a new 32-bit word) into an I32 [rows, ceil(cols·bits/32)] tensor.
inline Tensor packed_codes_tensor(const uint8_t* codes, int64_t rows, int64_t cols, int bits) {
  const HostMatrix<uint32_t> p = quant::pack_bits(MatrixView<const uint8_t>(codes, rows, cols), bits);
  return make_tensor<int32_t>(DType::kI32, {p.rows(), p.cols()}, reinterpret_cast<const int32_t*>(p.data()));
}

/// Inverse of packed_codes_tensor for the tensor `name`; IoError when it is missing or misshapen.
inline std::vector<uint8_t> expect_packed_codes(const TensorMap& map, const std::string& name, int64_t rows,
                                                int64_t cols, int bits, const std::string& context) {
  const int64_t words = (cols * bits + 31) / 32;
  const Tensor& t = expect_tensor(map, name, DType::kI32, {rows, words}, context);
  const MatrixView<const uint32_t> packed(reinterpret_cast<const uint32_t*>(t.bytes.data()), rows, words);
  return quant::unpack_bits(packed, bits, cols).storage();
}

}  // namespace caldera::algo::detail
