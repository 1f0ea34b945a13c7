#!/usr/bin/env bash
# The acceptance tables on minillama-small (docs/benchmarks.md): every method through
# `caldera-dist run` on one GPU, the Hessians collected once and shared (copied workdirs; phase 1 is
# method-independent), per-matrix errors from `caldera-dist inspect --json`.
#   tools/gpu-tables.sh [group...]     groups: caldera spqr lowrank (default, in that order);
#                                      spqr-4bit, spqr-4bit-outliers, lowrank-uniform, lowrank-s128,
#                                      lowrank-update (extra comparisons; lowrank-s128: the lowrank
#                                      presets with 128 sensitivity sequences instead of 32;
#                                      lowrank-update: the svdllm presets with --update local, on the
#                                      svdllm-r95 table when lowrank ran before it)
# Env: CALDERA_DIST (default .carry/caldera-dist), CALDERA_SMALL_MODEL (default: unpacked from
# .carry/minillama-small.tar.xz), BACKEND (default cuda), OUT (default ./gpu-out), TABLE_ARGS (extra
# options of every command, e.g. "--max-calib-seqs 8" for a smoke test).
# Writes $OUT/tables/<name>.json (run summary), <name>.inspect.json and <name>.err per configuration.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}/tables
mkdir -p "$out"
dist=${CALDERA_DIST:-$root/.carry/caldera-dist}
backend=${BACKEND:-cuda}
model=${CALDERA_SMALL_MODEL:-}
if [[ -z $model ]]; then
  [[ -f .carry/minillama-small/config.json ]] || tar xJf .carry/minillama-small.tar.xz -C .carry
  model=$root/.carry/minillama-small
fi
scratch=${SCRATCH:-/tmp/caldera-tables}
rm -rf "$scratch" && mkdir -p "$scratch"
common=(--model "$model" --calib tests/data/calib.u32 --backend "$backend" --log-level warn ${TABLE_ARGS:-})

"$dist" hessians "${common[@]}" --workdir "$scratch/base" --json >"$out/hessians.json" 2>"$out/hessians.err" \
  || { echo "hessians failed"; tail -5 "$out/hessians.err"; exit 1; }
echo "hessians: $(tail -1 "$out/hessians.json")"

# run NAME [FROM] -- run options...: copies the base workdir (and FROM's sensitivity tables), runs.
run() {
  local name=$1 from=$2; shift 2
  cp -r "$scratch/base" "$scratch/$name"
  if [[ -n $from && -d $scratch/$from/sensitivity ]]; then cp -r "$scratch/$from/sensitivity" "$scratch/$name/"; fi
  local t0=$SECONDS
  "$dist" run "${common[@]}" --workdir "$scratch/$name" --eval-tokens tests/data/eval.u32 --json "$@" \
    >"$out/$name.json" 2>"$out/$name.err"
  local rc=$?
  "$dist" inspect --workdir "$scratch/$name" --json 2>/dev/null | tail -1 >"$out/$name.inspect.json"
  echo "$name rc=$rc $((SECONDS - t0))s: $(tail -1 "$out/$name.json" | cut -c1-300)"
  rm -rf "$scratch/$name/output" "$scratch/$name/tasks"
}

# lowrank_presets TAG [run options...]: the asvd / svdllm / plain-SVD presets at 0.95, 0.9 and 0.85;
# 0.9 and 0.85 reuse the sensitivity tables of the method's 0.95 run, and plain SVD (whose STRS
# table is ASVD's, spec §5.1) reuses those of the ASVD run.
lowrank_presets() {
  local tag=$1 m; shift
  for m in asvd svdllm asvd-plainsvd; do
    run "$m$tag-r95" "$([[ $m == asvd-plainsvd ]] && echo "asvd$tag-r95")" --config "configs/$m-r95.ini" "$@"
    run "$m$tag-r90" "$m$tag-r95" --config "configs/$m-r90.ini" "$@"
    run "$m$tag-r85" "$m$tag-r95" --config "configs/$m-r85.ini" "$@"
  done
}

groups=("$@")
((${#groups[@]})) || groups=(caldera spqr lowrank)
for g in "${groups[@]}"; do
  case $g in
    caldera)
      run rtn-2bit "" --config configs/rtn-2bit.ini
      run quip-2bit "" --config configs/quip-2bit.ini
      run caldera-r64-lr16 "" --config configs/small-caldera-r64-lr16.ini
      run caldera-r32-lr4 "" --config configs/small-caldera-r32-lr4.ini
      ;;
    spqr)
      run spqr-near-lossless "" --config configs/spqr-near-lossless.ini
      run spqr-3bit "" --config configs/spqr-3bit.ini
      run spqr-3bit-g16-noout "" --config configs/spqr-3bit.ini --group-size 16 --stat-group-size 16 --outlier-threshold off --percdamp 0.01
      run spqr-3bit-tau05 "" --config configs/spqr-3bit.ini --outlier-threshold 0.5 --percdamp 0.01
      run gptq-3bit-g128 "" --config configs/gptq-3bit-g128.ini
      run gptq-4bit-g128 "" --config configs/gptq-4bit-g128.ini
      run rtn-3bit-g128 "" --method rtn --bits-q 3 --group-size 128 --rtn-grid gptq
      run rtn-4bit-g128 "" --method rtn --bits-q 4 --group-size 128 --rtn-grid gptq
      ;;
    spqr-4bit)
      run spqr-4bit-g64-noout "" --config configs/spqr-3bit.ini --bits 4 --group-size 64 --stat-group-size 64 --outlier-threshold off --percdamp 0.01
      run spqr-4bit-g128-noout "" --config configs/spqr-3bit.ini --bits 4 --group-size 128 --stat-group-size 128 --outlier-threshold off --percdamp 0.01
      run spqr-4bit-g128-tau05 "" --config configs/spqr-3bit.ini --bits 4 --group-size 128 --stat-group-size 128 --outlier-threshold 0.5 --percdamp 0.01
      run spqr-3bit-g8-tau02-pd001 "" --config configs/spqr-3bit.ini --percdamp 0.01
      ;;
    spqr-4bit-outliers)
      run spqr-4bit-g64-tau05 "" --config configs/spqr-3bit.ini --bits 4 --group-size 64 --stat-group-size 64 --outlier-threshold 0.5 --percdamp 0.01
      run spqr-4bit-g64-tau02 "" --config configs/spqr-3bit.ini --bits 4 --group-size 64 --stat-group-size 64 --outlier-threshold 0.2 --percdamp 0.01
      run spqr-4bit-g32-noout "" --config configs/spqr-3bit.ini --bits 4 --group-size 32 --stat-group-size 32 --outlier-threshold off --percdamp 0.01
      run gptq-4bit-g64 "" --config configs/gptq-4bit-g128.ini --group-size 64
      ;;
    lowrank-uniform)
      for r in 95 90 85; do
        run "svdllm-uniform-r$r" "" --config "configs/svdllm-r$r.ini" --rank-search uniform
        run "asvd-uniform-r$r" "" --config "configs/asvd-r$r.ini" --rank-search uniform
        run "asvd-plainsvd-uniform-r$r" "" --config "configs/asvd-plainsvd-r$r.ini" --rank-search uniform
      done
      ;;
    lowrank)
      lowrank_presets ""
      run asvd-kv50 asvd-r95 --config configs/asvd-kv50.ini
      ;;
    lowrank-s128) lowrank_presets -s128 --sensitivity-seqs 128 ;;
    lowrank-update)
      for r in 95 90 85; do run "svdllm-update-r$r" svdllm-r95 --config "configs/svdllm-r$r.ini" --update local; done
      ;;
    *) echo "unknown group $g"; exit 2 ;;
  esac
done
