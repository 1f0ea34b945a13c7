#include "linalg/cuda/cuda_quant_kernels.h"
