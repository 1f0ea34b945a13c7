#include "pipeline/tensor_store.h"

#include <cstring>

#include "core/error.h"
#include "io/json_value.h"

namespace caldera::pipeline {
namespace {

std::string shape_json(const std::vector<int64_t>& shape) {
  io::JsonValue a = io::JsonValue::array();
  for (int64_t d : shape) a.push_back(d);
  return a.dump();
}

template <class T>
void write_as(const io::h5::H5Group& g, const Tensor& t) {
  std::vector<T> flat(static_cast<size_t>(t.numel()));
  if (!flat.empty()) std::memcpy(flat.data(), t.bytes.data(), t.bytes.size());
  g.write_dataset<T>("data", std::span<const T>(flat), {t.numel()});
}

template <class T>
void read_as(const io::h5::H5Group& g, Tensor& t) {
  const std::vector<T> flat = g.read_dataset<T>("data", {t.numel()});
  t.bytes.resize(flat.size() * sizeof(T));
  if (!flat.empty()) std::memcpy(t.bytes.data(), flat.data(), t.bytes.size());
}

}  // namespace

void write_tensor_map(const io::h5::H5Group& parent, std::string_view name, const TensorMap& tensors) {
  const io::h5::H5Group group = parent.create_group(name);
  for (const auto& [tensor_name, t] : tensors) {
    CALDERA_CHECK(!tensor_name.empty() && tensor_name.find('/') == std::string::npos, "tensor name '", tensor_name,
                  "' must be non-empty and contain no '/'");
    CALDERA_CHECK(static_cast<int64_t>(t.bytes.size()) == t.numel() * dtype_size(t.dtype), "tensor '", tensor_name,
                  "': ", t.bytes.size(), " bytes for ", t.numel(), " elements of ", dtype_name(t.dtype));
    const io::h5::H5Group g = group.create_group(tensor_name);
    g.set_attribute("dtype", dtype_name(t.dtype));
    g.set_attribute("shape", shape_json(t.shape));
    switch (t.dtype) {
      case DType::kF64: write_as<double>(g, t); break;
      case DType::kF32: write_as<float>(g, t); break;
      case DType::kI64: write_as<int64_t>(g, t); break;
      case DType::kI32: write_as<int32_t>(g, t); break;
      case DType::kF16: case DType::kBF16: case DType::kI16: write_as<uint16_t>(g, t); break;
      case DType::kI8: case DType::kU8: case DType::kBool: write_as<uint8_t>(g, t); break;
    }
  }
}

TensorMap read_tensor_map(const io::h5::H5Group& parent, std::string_view name) {
  const io::h5::H5Group group = parent.open_group(name);
  TensorMap out;
  for (const std::string& tensor_name : group.member_names()) {
    const io::h5::H5Group g = group.open_group(tensor_name);
    Tensor t;
    const std::string dtype = g.attribute_string("dtype");
    if (!parse_dtype(dtype, &t.dtype))
      raise<IoError>(g.describe(), ": unknown dtype '", dtype, "'");
    const io::JsonValue shape = io::JsonValue::parse(g.attribute_string("shape"), g.describe());
    if (!shape.is_array()) raise<IoError>(g.describe(), ": attribute 'shape' is not a JSON array");
    for (const auto& d : shape.as_array()) {
      if (!d.is_int() || d.as_int() < 0) raise<IoError>(g.describe(), ": invalid shape ", shape.dump());
      t.shape.push_back(d.as_int());
    }
    switch (t.dtype) {
      case DType::kF64: read_as<double>(g, t); break;
      case DType::kF32: read_as<float>(g, t); break;
      case DType::kI64: read_as<int64_t>(g, t); break;
      case DType::kI32: read_as<int32_t>(g, t); break;
      case DType::kF16: case DType::kBF16: case DType::kI16: read_as<uint16_t>(g, t); break;
      case DType::kI8: case DType::kU8: case DType::kBool: read_as<uint8_t>(g, t); break;
    }
    out.emplace(tensor_name, std::move(t));
  }
  return out;
}

}  // namespace caldera::pipeline
