#include "linalg/cpu/cpu_nn_kernels.h"
