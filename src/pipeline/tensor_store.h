// TensorMap <-> HDF5 group, used by unit task files and mid-unit checkpoints.
//
// Layout under `<group>`: one subgroup per tensor, named as the tensor, with attributes
// dtype ("BF16", "F32", ...) and shape (JSON array, "[]" for a scalar) and one dataset `data`
// holding the numel elements flat: F64/F32/I64/I32/U8 as themselves; F16, BF16 and I16 as their
// 16-bit patterns (uint16); I8 and BOOL as bytes (uint8). Round trips are bit-exact.
#pragma once

#include <string_view>

#include "core/tensor_map.h"
#include "io/h5.h"

namespace caldera::pipeline {

/// Creates `name` under `parent` and writes every tensor into it. Tensor names must be non-empty
/// and contain no '/' (Error otherwise).
void write_tensor_map(const io::h5::H5Group& parent, std::string_view name, const TensorMap& tensors);

/// Reads a group written by write_tensor_map. Throws IoError naming the file and tensor when an
/// attribute is missing or inconsistent with the data.
TensorMap read_tensor_map(const io::h5::H5Group& parent, std::string_view name);

}  // namespace caldera::pipeline
