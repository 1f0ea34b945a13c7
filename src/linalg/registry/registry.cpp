// The only place that knows which backends are compiled in (style C6).
#include "caldera/config.h"
#include "linalg/backend.h"
#include "linalg/cpu/cpu_backend.h"

#if CALDERA_WITH_CUDA
#include "linalg/cuda/cuda_backend.h"
#endif

namespace caldera::linalg {

std::unique_ptr<Backend> make_backend(BackendKind kind, const BackendOptions& options) {
  switch (kind) {
    case BackendKind::kCpu: return std::make_unique<CpuBackend>(options);
    case BackendKind::kCuda:
#if CALDERA_WITH_CUDA
      if (cuda_device_count() == 0)
        raise<ConfigError>("--backend cuda: no CUDA device is visible on this host (use --backend cpu)");
      return std::make_unique<CudaBackend>(options);
#else
      raise<ConfigError>("--backend cuda: this build has no CUDA support (configure with -DCALDERA_WITH_CUDA=ON)");
#endif
  }
  raise<ConfigError>("unknown backend kind");
}

bool backend_available(BackendKind kind) noexcept {
  switch (kind) {
    case BackendKind::kCpu: return true;
    case BackendKind::kCuda:
#if CALDERA_WITH_CUDA
      return cuda_device_count() > 0;
#else
      return false;
#endif
  }
  return false;
}

}  // namespace caldera::linalg
