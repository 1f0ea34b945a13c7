#include "linalg/cuda/cuda_nn_kernels.h"
