#!/usr/bin/env bash
# Starts a private single-node SLURM cluster on this machine (munged + slurmctld + slurmd, SLURM
# 22.05 from Debian's slurmctld/slurmd/slurm-client/munge packages, tools/install-deps.sh --slurm),
# for the tests labelled `slurm` and for trying the sbatch templates by hand.
#
#   tools/slurm-local/start.sh [STATE_DIR]      then:  export SLURM_CONF=STATE_DIR/slurm.conf
#                                               (or:   source STATE_DIR/env.sh)
#   tools/slurm-local/stop.sh  [STATE_DIR]
#
# STATE_DIR (default $CALDERA_SLURM_DIR, else /tmp/caldera-slurm-$UID) holds everything: slurm.conf,
# a private munged socket and key use, controller state, spool, logs and pid files. Nothing under
# /etc or /run is changed, so several clusters (one per STATE_DIR) can run side by side: each picks
# a free pair of ports from 6817 up (or $CALDERA_SLURM_PORT for slurmctld, +1 for slurmd).
#
# The cluster: one node named after `hostname`, reached over loopback, CPUs = nproc, one default
# partition `debug` with OverSubscribe=YES, MpiDefault=pmix, root as SlurmUser, no cgroups and no
# accounting. For more tasks than CPUs use `srun --overcommit`. Job credentials live 10 s
# (AuthInfo cred_expire, $CALDERA_SLURM_CRED_EXPIRE_S) instead of 120 s: SLURM holds a requeued
# job for that long before it may start again, and the requeue tests should not wait minutes. The
# scheduler makes a pass every 5 s (sched_interval; default 60 s), so a requeued job starts about
# 15 s after `scontrol requeue` instead of 30-60 s.
#
# Idempotent: when the daemons recorded in STATE_DIR are running it only waits for the node and
# prints the environment; daemons that died are restarted. Must run as root (munged runs as the
# munge user, slurmd as root). Exit codes: 0 ready, 77 cannot run here (not root, packages
# missing: the reason is printed; CTest reports the tests as skipped), 1 failure (logs printed).
set -euo pipefail

state=${1:-${CALDERA_SLURM_DIR:-/tmp/caldera-slurm-$(id -u)}}
conf=$state/slurm.conf
host=$(hostname -s)
wait_idle_s=${CALDERA_SLURM_WAIT_S:-60}

skip() { echo "slurm-local: SKIP: $*" >&2; exit 77; }
die() { echo "slurm-local: ERROR: $*" >&2; exit 1; }

# ---- preconditions ---------------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || skip "must run as root (munged runs as the munge user, slurmd as root)"
for cmd in munged munge unmunge slurmctld slurmd sinfo srun sbatch scontrol runuser; do
  command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 ||
    skip "'$cmd' not found: install slurmctld slurmd slurm-client munge (tools/install-deps.sh --slurm)"
done
export PATH=$PATH:/usr/sbin:/sbin
id munge >/dev/null 2>&1 || skip "no 'munge' user: reinstall the munge package"
munge_key=${CALDERA_MUNGE_KEY:-/etc/munge/munge.key}
[[ -r $munge_key ]] || skip "munge key $munge_key missing: reinstall the munge package"

# ---- helpers -----------------------------------------------------------------------------------------
# pid from a pid file if that process is alive and is the expected program, else empty.
live_pid() {  # file comm
  local file=$1 name=$2 pid
  [[ -s $file ]] || return 0
  pid=$(tr -dc '0-9' <"$file")
  [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == "$name" ]] && echo "$pid"
  return 0
}
port_listening() {  # port
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" 'substr($2, length($2) - 4) == p && $4 == "0A" { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
show_logs() {
  for f in "$state"/log/*.log "$state"/munge/munged.log; do
    [[ -f $f ]] && { echo "---- $f (last lines)"; tail -n 20 "$f"; }
  done >&2
}

munge_pid_file=$state/munge/munged.pid
ctld_pid_file=$state/run/slurmctld.pid
slurmd_pid_file=$state/run/slurmd.pid
socket=$state/munge/munge.socket

mkdir -p "$state"/{ctld,spool,log,run,munge}
chmod 0755 "$state" "$state"/{ctld,spool,log,run}
chown munge:munge "$state/munge"
chmod 0700 "$state/munge"

munge_pid=$(live_pid "$munge_pid_file" munged)
ctld_pid=$(live_pid "$ctld_pid_file" slurmctld)
slurmd_pid=$(live_pid "$slurmd_pid_file" slurmd)

# ---- slurm.conf (rewritten only when none of this cluster's daemons runs) --------------------------
if [[ -z $ctld_pid && -z $slurmd_pid ]]; then
  if [[ -n ${CALDERA_SLURM_PORT:-} ]]; then
    port=$CALDERA_SLURM_PORT
  else
    port=6817
    while port_listening "$port" || port_listening $((port + 1)); do
      port=$((port + 2))
      ((port < 6917)) || die "no free port pair between 6817 and 6917"
    done
  fi
  cpus=$(nproc)
  mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
  cat >"$conf" <<EOF
# Written by tools/slurm-local/start.sh for a private single-node test cluster. State: $state
ClusterName=caldera-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket,cred_expire=${CALDERA_SLURM_CRED_EXPIRE_S:-10}
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$ctld_pid_file
SlurmdPidFile=$slurmd_pid_file
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
fi
[[ -f $conf ]] || die "$conf missing while daemons of $state run; run stop.sh $state first"
echo "export SLURM_CONF=$conf" >"$state/env.sh"
export SLURM_CONF=$conf

# ---- munged (private socket, the system key) ---------------------------------------------------------
if [[ -z $munge_pid ]]; then
  runuser -u munge -- munged --force --socket="$socket" --key-file="$munge_key" \
    --pid-file="$munge_pid_file" --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed" ||
    { show_logs; die "munged did not start"; }
fi
for _ in $(seq 50); do
  munge -n -S "$socket" 2>/dev/null | unmunge -S "$socket" >/dev/null 2>&1 && break
  sleep 0.1
done
munge -n -S "$socket" | unmunge -S "$socket" >/dev/null || { show_logs; die "munge round trip on $socket failed"; }

# ---- slurmctld, then slurmd --------------------------------------------------------------------------
if [[ -z $ctld_pid ]]; then
  slurmctld -f "$conf" || { show_logs; die "slurmctld did not start"; }
fi
for _ in $(seq 100); do
  scontrol ping 2>/dev/null | grep -q "is UP" && break
  sleep 0.2
done
scontrol ping | grep -q "is UP" || { show_logs; die "slurmctld does not answer (scontrol ping)"; }
if [[ -z $slurmd_pid ]]; then
  slurmd -f "$conf" -N "$host" || { show_logs; die "slurmd did not start"; }
fi

# ---- wait for the node -------------------------------------------------------------------------------
deadline=$((SECONDS + wait_idle_s))
node_state=""
while ((SECONDS < deadline)); do
  node_state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -n1 || true)
  case $node_state in
    idle | mix | alloc) break ;;
    drain | drng | down) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.5
done
case $node_state in
  idle | mix | alloc) ;;
  *) show_logs; die "node $host is '$node_state' after ${wait_idle_s}s (expected idle)" ;;
esac

echo "slurm-local: cluster up in $state (node $host: $node_state, slurmctld port $(awk -F= '/^SlurmctldPort/ {print $2}' "$conf"))" >&2
echo "export SLURM_CONF=$conf"
