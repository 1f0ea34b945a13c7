// The OpenBLAS kernel-set check of the CPU backend (linalg/cpu/cpu_backend.h): generic SSE kernels
// on an AVX2 / AVX-512 CPU produce a warning naming the OPENBLAS_CORETYPE to set; anything else none.
#include <gtest/gtest.h>

#include "linalg/cpu/cpu_backend.h"

namespace caldera::linalg {
namespace {

TEST(OpenBlasAdvice, GenericKernelsOnAnAvxCpuNameTheCoreTypeToSet) {
  const std::string avx512 = openblas_kernel_advice("Prescott", true, true);
  EXPECT_NE(avx512.find("OPENBLAS_CORETYPE=SkylakeX"), std::string::npos) << avx512;
  EXPECT_NE(avx512.find("Prescott"), std::string::npos) << avx512;
  const std::string avx2 = openblas_kernel_advice("Nehalem", true, false);
  EXPECT_NE(avx2.find("OPENBLAS_CORETYPE=Haswell"), std::string::npos) << avx2;
}

TEST(OpenBlasAdvice, SilentWhenTheKernelsMatchTheCpu) {
  EXPECT_EQ(openblas_kernel_advice("SkylakeX", true, true), "");
  EXPECT_EQ(openblas_kernel_advice("Haswell", true, false), "");
  EXPECT_EQ(openblas_kernel_advice("Zen", true, false), "");
  EXPECT_EQ(openblas_kernel_advice("Prescott", false, false), "") << "an old CPU without AVX2 has nothing better";
}

TEST(OpenBlasAdvice, ThisProcessReportsItsCoreName) {
  EXPECT_NE(openblas_core_name(), "unknown") << "openblas_get_corename() returned nothing";
  const std::string advice = openblas_kernel_advice();
  if (!advice.empty()) {
    EXPECT_NE(advice.find(openblas_core_name()), std::string::npos) << advice;
  }
}

}  // namespace
}  // namespace caldera::linalg
