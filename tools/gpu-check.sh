#!/usr/bin/env bash
# Builds and checks caldera-dist on a GPU machine (the lead's device runs; see docs/benchmarks.md).
#   tools/gpu-check.sh build            configure + build (CUDA arch 90) into build-gpu/
#   tools/gpu-check.sh test [regex]     ctest -L gpu, then the cuda cases of other suites (serial: one GPU)
#   tools/gpu-check.sh bench            the GPU benchmarks (linalg, quant, forward, caldera)
# caldera-dist itself needs Boost.Program_options, which the GPU machine lacks: build it elsewhere
# (sm_90) and run tools/gpu-tables.sh with it for the end-to-end figures.
# Outputs go to $OUT (or ./gpu-out) as logs. minillama-small is taken from $CALDERA_SMALL_MODEL, or
# unpacked from .carry/minillama-small.tar.xz.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
build=build-gpu
jobs=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

small_model() {
  if [[ -n "${CALDERA_SMALL_MODEL:-}" ]]; then echo "$CALDERA_SMALL_MODEL"; return; fi
  if [[ ! -f .carry/minillama-small/config.json && -f .carry/minillama-small.tar.xz ]]; then
    tar xJf .carry/minillama-small.tar.xz -C .carry
  fi
  echo "$root/.carry/minillama-small"
}

case "${1:-}" in
  build)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$out/configure.log" 2>&1 \
      || { tail -30 "$out/configure.log"; exit 1; }
    cmake --build $build -j "$jobs" >"$out/build.log" 2>&1 || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
    echo "build ok"
    ;;
  test)
    export CALDERA_SMALL_MODEL=$(small_model)
    (cd $build && ctest -L gpu -j1 --timeout 400 --output-on-failure ${2:+-R "$2"}) >"$out/ctest-gpu.log" 2>&1
    rc=$?
    # CUDA cases of CPU-labelled suites (e.g. test_plan's EstimateMatchesCompress/cuda) skip without a GPU.
    (cd $build && ctest -R cuda -LE gpu -j1 --timeout 400 --output-on-failure) >>"$out/ctest-gpu.log" 2>&1 || rc=1
    grep -E "tests passed|Failed|\*\*\*|Not Run|Exception" "$out/ctest-gpu.log" | tail -40
    exit $rc
    ;;
  bench)
    for b in "bench_linalg --sizes 4096" "bench_linalg --sizes 11008,14336 --no-cpu" "bench_quant" \
             "bench_forward --seq-len 2048 --cpu-seq-len 512 --reps 3" "bench_caldera"; do
      name=$(echo "$b" | tr ' ,' '__' | tr -s '_')
      echo "== $b"
      timeout 400 $build/tools/bench/$b >"$out/$name.md" 2>"$out/$name.err"; echo "rc=$?"
      cat "$out/$name.md"
    done
    ;;
  *) echo "usage: $0 build|test [regex]|bench"; exit 2 ;;
esac
