#!/usr/bin/env bash
# Creates (or reuses) a Python virtual environment with torch, transformers and peft for the
# Hugging Face end-to-end test (tests/integration/test_e2e_hf.py) and prints its interpreter.
#   tools/hf-venv.sh [DIR]     (default build/hf-venv; about 5 GiB, 2-3 minutes from PyPI)
# Exits non-zero, saying why on stderr, when PyPI cannot be reached; the test then skips with the
# reason printed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$root/build/hf-venv}
req=$root/tools/requirements-hf.txt
stamp=$venv/.requirements
if [[ -x $venv/bin/python ]] && cmp -s "$req" "$stamp"; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv" >&2
if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2; then
  echo "hf-venv: could not install $req into $venv (is PyPI reachable?)" >&2
  exit 1
fi
cp "$req" "$stamp"
echo "$venv/bin/python"
