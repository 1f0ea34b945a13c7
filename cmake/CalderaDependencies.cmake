# Third-party packages. On Debian/Ubuntu they come from tools/install-deps.sh (apt packages).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
# Static Boost: the same binary then runs on hosts with another Boost (e.g. Ubuntu 24.04's 1.83).
if(POLICY CMP0167)
  cmake_policy(SET CMP0167 NEW)  # BoostConfig.cmake instead of the removed FindBoost module
endif()
set(Boost_USE_STATIC_LIBS ON)
find_package(Boost 1.74 QUIET COMPONENTS program_options)
if(NOT TARGET Boost::program_options)
  # Some distributions ship the library without its CMake package file.
  find_path(CALDERA_BOOST_PO_INCLUDE boost/program_options.hpp)
  find_library(CALDERA_BOOST_PO_LIBRARY NAMES libboost_program_options.a boost_program_options)
  if(CALDERA_BOOST_PO_INCLUDE AND CALDERA_BOOST_PO_LIBRARY)
    add_library(Boost::program_options UNKNOWN IMPORTED)
    set_target_properties(Boost::program_options PROPERTIES
      IMPORTED_LOCATION ${CALDERA_BOOST_PO_LIBRARY} INTERFACE_INCLUDE_DIRECTORIES ${CALDERA_BOOST_PO_INCLUDE})
  endif()
endif()
# Without Boost.Program_options the libraries, tests and benchmarks still build (a GPU machine
# that lacks it can run them); the caldera-dist executable and its CLI tests are skipped.
if(TARGET Boost::program_options)
  set(CALDERA_HAVE_CLI ON)
else()
  set(CALDERA_HAVE_CLI OFF)
  message(WARNING "Boost.Program_options not found: caldera-dist and its CLI tests are not built "
                  "(install libboost-program-options-dev)")
endif()
find_package(nlohmann_json 3.10 REQUIRED)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(LAPACKE_INCLUDE_DIR lapacke.h PATH_SUFFIXES openblas REQUIRED)
find_library(LAPACKE_LIBRARY lapacke REQUIRED)
find_path(CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES x86_64-linux-gnu/openblas-pthread openblas REQUIRED)

if(CALDERA_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

if(CALDERA_WITH_CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
if(CALDERA_WITH_NCCL)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
    message(FATAL_ERROR "CALDERA_WITH_NCCL=ON but nccl.h / libnccl were not found; "
                        "install NCCL or configure with -DCALDERA_WITH_NCCL=OFF")
  endif()
  add_library(caldera_nccl INTERFACE)
  target_include_directories(caldera_nccl SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
  target_link_libraries(caldera_nccl INTERFACE ${NCCL_LIBRARY})
endif()

# One target per vendor library so that modules link exactly what they may use (DESIGN §5).
add_library(caldera_lapack INTERFACE)
target_include_directories(caldera_lapack SYSTEM INTERFACE ${LAPACKE_INCLUDE_DIR} ${CBLAS_INCLUDE_DIR})
target_link_libraries(caldera_lapack INTERFACE ${LAPACKE_LIBRARY} BLAS::BLAS)

add_library(caldera_hdf5 INTERFACE)
target_include_directories(caldera_hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_link_libraries(caldera_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
target_compile_definitions(caldera_hdf5 INTERFACE ${HDF5_C_DEFINITIONS})
