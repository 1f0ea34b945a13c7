// CUDA build, any machine (label unit): device discovery must never throw, and asking for the CUDA
// backend where there is no device gives a ConfigError that says what to do. Runs in CI, where the
// CUDA toolkit is installed but no GPU is present.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "linalg/backend.h"
#include "linalg/cuda/cuda_backend.h"

namespace caldera::linalg {
namespace {

TEST(CudaRuntime, DeviceCountNeverThrowsAndMatchesAvailability) {
  int count = -1;
  EXPECT_NO_THROW(count = cuda_device_count());
  EXPECT_GE(count, 0);
  EXPECT_EQ(backend_available(BackendKind::kCuda), count > 0);
}

TEST(CudaRuntime, MakeBackendWithoutDeviceIsConfigError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present; this case needs a machine without one";
  try {
    (void)make_backend(BackendKind::kCuda);
    FAIL() << "make_backend(kCuda) succeeded without a device";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--backend cpu"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CudaBackend(BackendOptions{}), ConfigError);
}

TEST(CudaRuntime, DeviceOrdinalOutOfRangeIsConfigError) {
  const int count = cuda_device_count();
  if (count == 0) GTEST_SKIP() << "no CUDA device on this machine";
  BackendOptions options;
  options.device = count;
  try {
    CudaBackend backend(options);
    FAIL() << "device " << count << " accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace caldera::linalg
