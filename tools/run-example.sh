#!/usr/bin/env bash
# The README's first command: installs dependencies, builds caldera-dist, and compresses the bundled
# minillama-tiny model with CALDERA (configs/tiny-caldera-r16-lr4.ini), printing the perplexity on
# the bundled evaluation tokens before and after and the bits per parameter.
#   tools/run-example.sh [extra caldera-dist run options]     e.g. --config configs/quip-2bit.ini
# The work directory is work/example (rerunning resumes, or is a no-op once finished); set
# CALDERA_EXAMPLE_RANKS=N to run it on N MPI ranks (same output bytes).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${CALDERA_JOBS:-$(nproc)}" --target caldera-dist

launch=()
if [[ "${CALDERA_EXAMPLE_RANKS:-1}" != "1" ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  launch=(mpiexec -n "$CALDERA_EXAMPLE_RANKS" --oversubscribe)
fi
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
"${launch[@]}" build/bin/caldera-dist run --model tests/data/minillama-tiny --calib tests/data/calib.u32 \
  --workdir work/example --config configs/tiny-caldera-r16-lr4.ini --eval-tokens tests/data/eval.u32 \
  --json "$@" | tee "$summary"
python3 - "$summary" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"\nminillama-tiny, {r['method']}: perplexity {r['ppl_before']:.4f} (bf16) -> {r['ppl_after']:.4f}, "
      f"{r['avg_bits']:.3f} bits per parameter (linear layers), output in {r['output']}")
PY
