# Build options. CUDA is ON by default when a CUDA toolkit (nvcc) is found, per the Foundation issue;
# a CPU-only build is -DCALDERA_WITH_CUDA=OFF.
include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "nvcc")
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  set(_caldera_cuda_default ON)
else()
  set(_caldera_cuda_default OFF)
endif()

option(CALDERA_WITH_CUDA "CUDA backend (cuBLAS, cuSOLVER, kernels/)" ${_caldera_cuda_default})
option(CALDERA_WITH_NCCL "NCCL device collectives (needs CUDA)" ${CALDERA_WITH_CUDA})
option(CALDERA_BUILD_TESTS "GoogleTest suites and CTest registration" ON)
option(CALDERA_WERROR "Treat warnings as errors" OFF)
set(CALDERA_SANITIZE "" CACHE STRING "Sanitizers for host code, e.g. address;undefined (empty: none)")

if(CALDERA_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures (A100, H100/H200)" FORCE)
  endif()
  enable_language(CUDA)
  # CMake < 3.26 does not know that nvcc >= 12 accepts -std=c++20 (CUDA20 would be "unsupported").
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
else()
  set(CALDERA_WITH_NCCL OFF CACHE BOOL "NCCL device collectives (needs CUDA)" FORCE)
endif()

message(STATUS "caldera: CUDA=${CALDERA_WITH_CUDA} NCCL=${CALDERA_WITH_NCCL} tests=${CALDERA_BUILD_TESTS} "
               "sanitize='${CALDERA_SANITIZE}' archs='${CMAKE_CUDA_ARCHITECTURES}'")

# 0/1 spellings for the generated config header.
foreach(_opt CALDERA_WITH_CUDA CALDERA_WITH_NCCL)
  if(${_opt})
    set(${_opt}_01 1)
  else()
    set(${_opt}_01 0)
  endif()
endforeach()
