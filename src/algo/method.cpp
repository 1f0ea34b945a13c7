#include "algo/method.h"

#include <cstdio>

#include "core/error.h"

namespace caldera::algo {

std::string UnitId::name() const {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "L%03d.", layer);
  return buf + matrix;
}

CompressedUnit Method::update(linalg::Backend&, const UnitId& unit, MatrixView<const float>, const CompressedUnit&,
                             const InputStats&) const {
  raise<Error>(unit.name(), ": method ", name(), " has no update pass");
}

}  // namespace caldera::algo
