#include "core/dtype.h"

namespace caldera {
namespace {
struct Entry {
  DType type;
  std::string_view name;
};
constexpr Entry kNames[] = {{DType::kF64, "F64"}, {DType::kF32, "F32"}, {DType::kF16, "F16"},
                            {DType::kBF16, "BF16"}, {DType::kI64, "I64"}, {DType::kI32, "I32"},
                            {DType::kI16, "I16"}, {DType::kI8, "I8"}, {DType::kU8, "U8"},
                            {DType::kBool, "BOOL"}};
}  // namespace

std::string_view dtype_name(DType t) noexcept {
  for (const auto& e : kNames)
    if (e.type == t) return e.name;
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) noexcept {
  for (const auto& e : kNames)
    if (e.name == name) {
      *out = e.type;
      return true;
    }
  return false;
}

}  // namespace caldera
