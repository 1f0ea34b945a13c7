#include "linalg/cpu/cpu_quant_kernels.h"
