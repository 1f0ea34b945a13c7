#include "algo/method.h"

#include <cstdio>

namespace caldera::algo {

std::string UnitId::name() const {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "L%03d.", layer);
  return buf + matrix;
}

}  // namespace caldera::algo
