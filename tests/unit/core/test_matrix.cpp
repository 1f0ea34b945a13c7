#include <gtest/gtest.h>

#include "core/matrix.h"

namespace caldera {
namespace {

TEST(Matrix, ViewsAndBlocks) {
  HostMatrix<float> m(3, 4);
  for (int64_t i = 0; i < 12; ++i) m.data()[i] = static_cast<float>(i);
  auto v = m.view();
  EXPECT_EQ(v(2, 3), 11.0f);
  auto b = v.block(1, 1, 2, 2);
  EXPECT_EQ(b.ld, 4);
  EXPECT_EQ(b(0, 0), 5.0f);
  EXPECT_EQ(b(1, 1), 10.0f);
  EXPECT_FALSE(b.contiguous());
  EXPECT_THROW(v.block(2, 0, 2, 1), Error);
  HostMatrix<float> copy{MatrixView<const float>(b)};
  EXPECT_EQ(copy.rows(), 2);
  EXPECT_EQ(copy(1, 0), 9.0f);
}

TEST(Matrix, ShapeMismatchInConstructorThrows) {
  EXPECT_THROW(HostMatrix<int>(2, 2, std::vector<int>(3)), Error);
}

}  // namespace
}  // namespace caldera
