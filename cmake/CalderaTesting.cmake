# Test registration helpers (DESIGN §7). Labels: unit, parity, gpu, mpi, integration, slurm, slow.
#
#   caldera_add_test(NAME SOURCES a.cpp ... LIBS lib... LABELS unit ... [TIMEOUT s])
#     one GoogleTest binary; each TEST is its own CTest entry carrying LABELS.
#   caldera_add_mpi_test(NAME RANKS 2 3 SOURCES ... LIBS ... [LABELS extra] [TIMEOUT s])
#     one binary run under mpiexec -np N --oversubscribe for each N in RANKS; its main
#     (tests/common/mpi_main.cpp) reduces failures over ranks so every rank exits alike.
# --oversubscribe: 3-4 ranks on 2 cores. --bind-to none: no core pinning (the ranks share 2 cores).
# btl_vader_single_copy_mechanism none: Open MPI's shared-memory transport otherwise uses CMA
# (process_vm_readv) for large messages, which containers without CAP_SYS_PTRACE refuse ("Read -1,
# expected N, errno = 1"); plain copy-in/copy-out works everywhere and costs nothing at test sizes.
set(CALDERA_MPIEXEC_PREFLAGS --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none
    CACHE STRING "extra mpiexec flags for tests")

function(caldera_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} caldera_test_common GTest::gtest_main caldera::options caldera::warnings)
  # Tests are named <binary>.<Suite>.<Test>: one source built for two backends (test_backend_ops_cpu
  # and _cuda) must not give clashing names, or labels and filters would pick the wrong binary.
  gtest_discover_tests(${name} TEST_PREFIX "${name}." TEST_LIST ${name}_TESTS
    PROPERTIES TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
  # gtest_discover_tests (CMake 3.25) flattens list-valued PROPERTIES ("parity;gpu" became
  # LABELS=parity plus a bogus property "gpu"; ENVIRONMENT lost its second entry), so list-valued
  # properties are set by a script that ctest includes after the discovered tests are defined.
  set(_caldera_props "${CMAKE_CURRENT_BINARY_DIR}/${name}_properties.cmake")
  file(WRITE "${_caldera_props}"
       "if(${name}_TESTS)\n  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS [==[${ARG_LABELS}]==]\n"
       "    ENVIRONMENT [==[CALDERA_TEST_DATA=${PROJECT_SOURCE_DIR}/tests/data;OPENBLAS_NUM_THREADS=1]==])\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_caldera_props}")
endfunction()

function(caldera_add_mpi_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS;RANKS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} caldera_test_mpi_main GTest::gtest MPI::MPI_CXX
                                        caldera::options caldera::warnings)
  foreach(np IN LISTS ARG_RANKS)
    add_test(NAME ${name}.np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${CALDERA_MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:${name}>)
    set_tests_properties(${name}.np${np} PROPERTIES
      LABELS "mpi;${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT} PROCESSORS ${np}
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;CALDERA_TEST_DATA=${PROJECT_SOURCE_DIR}/tests/data;OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
  endforeach()
endfunction()

# SLURM tests (label slurm) run against a private single-node cluster (tools/slurm-local) that the
# CTest fixture ${CALDERA_SLURM_FIXTURE} starts and stops (tests/slurm/CMakeLists.txt). Each build
# tree gets its own state dir (and free ports), so several checkouts can test at the same time.
#   caldera_add_slurm_test(NAME COMMAND cmd args... [TIMEOUT s] [ENVIRONMENT VAR=value ...])
#     requires the fixture; runs with SLURM_CONF and CALDERA_SLURM_DIR set; exit code 77 = skipped
#     (the helper scripts return it when no cluster can run here, e.g. not root).
string(MD5 _caldera_build_hash "${PROJECT_BINARY_DIR}")
string(SUBSTRING "${_caldera_build_hash}" 0 8 _caldera_build_hash)
set(CALDERA_SLURM_DIR "/tmp/caldera-slurm-${_caldera_build_hash}" CACHE PATH "state dir of the test SLURM cluster")
set(CALDERA_SLURM_FIXTURE caldera_slurm_cluster)

function(caldera_add_slurm_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "COMMAND;ENVIRONMENT" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${ARG_COMMAND})
  set_tests_properties(${name} PROPERTIES
    FIXTURES_REQUIRED ${CALDERA_SLURM_FIXTURE} LABELS slurm TIMEOUT ${ARG_TIMEOUT} SKIP_RETURN_CODE 77
    RESOURCE_LOCK caldera_slurm_cluster
    ENVIRONMENT "SLURM_CONF=${CALDERA_SLURM_DIR}/slurm.conf;CALDERA_SLURM_DIR=${CALDERA_SLURM_DIR};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;CALDERA_TEST_DATA=${PROJECT_SOURCE_DIR}/tests/data;OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;${ARG_ENVIRONMENT}")
endfunction()
