#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, to try robolearn's SLURM launchers before a real cluster:
#   sudo scripts/local_slurm.sh up       # install (Debian: slurm-wlm, munge) if needed, configure, start
#   scripts/local_slurm.sh status        # sinfo + squeue
#   sudo scripts/local_slurm.sh down     # cancel every job, stop the daemons
# One partition, "cpu" (the default), sized to this machine (all cores, 90 % of the memory). Daemons run as root
# with process tracking by /proc (no cgroups), job state in /var/spool/slurmctld; logs in /var/log/slurm.
# Then: python train.py -m hydra/launcher=slurm_cpu sweeps=seeds2 ...   (README: "Experiments, sweeps and clusters")
set -euo pipefail

CONF_DIR=/etc/slurm
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 9 / 10 / 1024 ))

need_root() { [ "$(id -u)" = 0 ] || { echo "$0 $1: run as root (sudo)" >&2; exit 1; }; }

install_packages() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || {
            apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
        }
    fi
}

write_config() {
    mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/munge
    cat > "$CONF_DIR/slurm.conf" <<CONF
# written by robolearn scripts/local_slurm.sh: a single-node cluster for trying the launchers
ClusterName=robolearn-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=10
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
}

up() {
    need_root up
    install_packages
    write_config
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            echo "local SLURM is up: partition cpu, node $HOST, $CPUS CPUs, ${MEM_MB} MB"
            return 0
        fi
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "local SLURM did not come up; see /var/log/slurm/*.log" >&2
    exit 1
}

down() {
    need_root down
    scancel --full --quiet -u "$(id -un)" 2>/dev/null || true
    scontrol shutdown >/dev/null 2>&1 || true
    for daemon in slurmd slurmctld munged; do
        pkill -x "$daemon" 2>/dev/null || true
    done
    for _ in $(seq 30); do  # wait for them to exit, so that an `up` right after starts new ones
        running=0
        for daemon in slurmd slurmctld munged; do
            pgrep -x "$daemon" >/dev/null && running=1
        done
        [ "$running" = 0 ] && break
        sleep 1
    done
    echo "local SLURM stopped"
}

status() {
    sinfo && squeue
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
