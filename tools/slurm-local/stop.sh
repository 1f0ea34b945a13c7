#!/usr/bin/env bash
# Stops the private SLURM cluster that tools/slurm-local/start.sh started in STATE_DIR: exactly the
# daemons whose pid files are in STATE_DIR (slurmd, then slurmctld, then munged), each only if the
# pid is still that program. Safe when nothing runs. Keeps STATE_DIR (logs) unless --purge.
#
#   tools/slurm-local/stop.sh [--purge] [STATE_DIR]   (default $CALDERA_SLURM_DIR, else /tmp/caldera-slurm-$UID)
set -euo pipefail

purge=0
if [[ ${1:-} == --purge ]]; then
  purge=1
  shift
fi
state=${1:-${CALDERA_SLURM_DIR:-/tmp/caldera-slurm-$(id -u)}}

# Sends TERM to the daemon recorded in `file` if it is `name`, waits up to 15 s, then KILL.
stop_daemon() {  # file name
  local file=$1 name=$2 pid
  [[ -s $file ]] || return 0
  pid=$(tr -dc '0-9' <"$file")
  if [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == "$name" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
      [[ -e /proc/$pid ]] || break
      sleep 0.1
    done
    if [[ -e /proc/$pid ]]; then
      echo "slurm-local: $name ($pid) ignored SIGTERM for 15 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "slurm-local: stopped $name ($pid)" >&2
  fi
  rm -f "$file"
}

if [[ -d $state ]]; then
  stop_daemon "$state/run/slurmd.pid" slurmd
  stop_daemon "$state/run/slurmctld.pid" slurmctld
  stop_daemon "$state/munge/munged.pid" munged
  if ((purge)); then
    rm -rf "$state"
    echo "slurm-local: removed $state" >&2
  fi
fi
exit 0
