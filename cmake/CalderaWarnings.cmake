# caldera::options — language level, generated config header, sanitizers (host code only).
# caldera::warnings — warning flags; every project target links it PRIVATE.
add_library(caldera_options INTERFACE)
add_library(caldera::options ALIAS caldera_options)
target_compile_features(caldera_options INTERFACE cxx_std_20)
target_include_directories(caldera_options INTERFACE
  ${PROJECT_BINARY_DIR}/generated ${PROJECT_SOURCE_DIR}/src)
if(CALDERA_SANITIZE)
  string(REPLACE ";" "," _caldera_san "${CALDERA_SANITIZE}")
  target_compile_options(caldera_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${_caldera_san} -fno-omit-frame-pointer -fno-sanitize-recover=all>)
  target_link_options(caldera_options INTERFACE -fsanitize=${_caldera_san})
endif()

add_library(caldera_warnings INTERFACE)
add_library(caldera::warnings ALIAS caldera_warnings)
target_compile_options(caldera_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wundef -Wnon-virtual-dtor -Wno-missing-field-initializers>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall --expt-relaxed-constexpr -Wno-deprecated-gpu-targets>
  # nvcc's front end ignores the requires-clause of MatrixView's view-of-const conversion and warns
  # (#554 "will not be called") for every MatrixView<const T> it instantiates: a false positive.
  $<$<COMPILE_LANGUAGE:CUDA>:--diag-suppress=554>)
if(CALDERA_WERROR)
  target_compile_options(caldera_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
