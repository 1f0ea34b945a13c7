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
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
               ENVIRONMENT "CALDERA_TEST_DATA=${PROJECT_SOURCE_DIR}/tests/data;OPENBLAS_NUM_THREADS=1"
    DISCOVERY_TIMEOUT 60)
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
