#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages caldera-dist builds and tests with. Idempotent: packages that
# are already present are skipped, so it costs a second on a prepared machine.
#   tools/install-deps.sh          build + test dependencies (MPI, HDF5, Boost, OpenBLAS, LAPACKE, json, gtest)
#   tools/install-deps.sh --slurm  also SLURM + munge for the local test cluster (tests labelled slurm)
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config git xz-utils python3 python3-venv
          libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libboost-program-options-dev
          libopenblas-dev liblapacke-dev nlohmann-json3-dev libgtest-dev)
if [[ "${1:-}" == "--slurm" ]]; then
  packages+=(slurmctld slurmd slurm-client munge)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
