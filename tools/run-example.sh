#!/usr/bin/env bash
# The README's first command: installs dependencies, builds caldera-dist, and compresses the bundled
# minillama-tiny model with the CALDERA preset, printing perplexity before and after and the bits
# per parameter.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${CALDERA_JOBS:-$(nproc)}" --target caldera-dist
echo "run-example: the pipeline (caldera-dist run) is not built yet; see README.md status." >&2
exit 1
