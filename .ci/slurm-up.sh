#!/usr/bin/env bash
# Start a one-node SLURM cluster with accounting, everything in one temporary folder: munge
# (its own key and socket), a private MariaDB, slurmdbd, slurmctld and slurmd, all as the
# current (root) user. The node advertises this machine's real CPUs and memory (`slurmd -C`).
#
#     eval "$(.ci/slurm-up.sh)"      # prints `export SLURM_CONF=...` lines; stop with
#     .ci/slurm-down.sh              # (reads $DSTBENCH_SLURM_DIR)
#
# Needs Debian's slurm-wlm, slurmdbd, munge and mariadb-server. DSTBENCH_SLURM_DIR picks the
# folder (default: a fresh mktemp -d); DSTBENCH_SLURM_ACCOUNTING=0 starts it without slurmdbd
# (then sacct has nothing to say and dstbench must cope from squeue alone).
set -euo pipefail
# The daemons live in sbin, which a non-login shell's PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

dir=${DSTBENCH_SLURM_DIR:-$(mktemp -d -t dstbench-slurm.XXXXXX)}
accounting=${DSTBENCH_SLURM_ACCOUNTING:-1}
mkdir -p "$dir"/{state,spool,log,run,mysql}
host=$(hostname -s)
log() { echo "slurm-up: $*" >&2; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 4))); do
        if timeout 5 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    log "timed out waiting for $what; logs in $dir/log"
    tail -n 20 "$dir"/log/* >&2 || true
    exit 1
}

# --- munge: a private key and socket ------------------------------------------------------
dd if=/dev/urandom bs=1 count=1024 of="$dir/munge.key" status=none
chmod 400 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/run/munge.socket" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/run/munged.seed"
wait_for 10 munge munge --socket="$dir/run/munge.socket" -n

# --- accounting: MariaDB on a private socket and port, then slurmdbd -----------------------
dbd_port=${DSTBENCH_SLURMDBD_PORT:-6819}
if [ "$accounting" = 1 ]; then
    db_port=${DSTBENCH_MYSQL_PORT:-3307}
    mariadb-install-db --no-defaults --datadir="$dir/mysql" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/log/mysql-install.log" 2>&1
    mariadbd --no-defaults --datadir="$dir/mysql" --user=root --bind-address=127.0.0.1 \
        --port="$db_port" --socket="$dir/run/mysql.sock" --pid-file="$dir/run/mysqld.pid" \
        --log-error="$dir/log/mysqld.log" --innodb-buffer-pool-size=64M 2>>"$dir/log/mysqld.log" &
    wait_for 60 mariadb mariadb --no-defaults --socket="$dir/run/mysql.sock" -uroot -e "select 1"
    mariadb --no-defaults --socket="$dir/run/mysql.sock" -uroot -e \
        "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
    cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$dir/run/munge.socket
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$dir/slurmdbd.conf"
    SLURM_CONF="$dir/slurm.conf" slurmdbd  # reads slurmdbd.conf next to slurm.conf
    accounting_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$dir/run/munge.socket
JobAcctGatherType=jobacct_gather/linux"
else
    accounting_lines="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# --- slurm.conf: one node, this machine's real CPUs and memory -----------------------------
node=$(slurmd -C | head -n 1)
cat >"$dir/slurm.conf" <<EOF
ClusterName=dstbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/run/munge.socket
SlurmctldPort=${DSTBENCH_SLURMCTLD_PORT:-6817}
SlurmdPort=${DSTBENCH_SLURMD_PORT:-6818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerParameters=sched_interval=2
# Without a default, a job asks for the whole node's memory and jobs never share the node.
DefMemPerCPU=${DSTBENCH_SLURM_MEM_PER_CPU:-2048}
MessageTimeout=30
KillWait=30
MinJobAge=300
$accounting_lines
JobCompType=jobcomp/none
$node State=UNKNOWN NodeAddr=127.0.0.1
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# cgroups are not used (proctrack/linuxproc, task/none); an explicit file keeps slurmd from
# probing the host's cgroup hierarchy.
cat >"$dir/cgroup.conf" <<EOF
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
EOF
export SLURM_CONF=$dir/slurm.conf

if [ "$accounting" = 1 ]; then
    wait_for 30 slurmdbd sacctmgr -i list cluster
    sacctmgr -i add cluster dstbench >/dev/null 2>&1 || true
fi
slurmctld
wait_for 30 slurmctld scontrol ping
slurmd
wait_for 60 "the node to be idle" sh -c "sinfo -h -N -o '%t' | grep -qx idle"

log "one-node cluster up in $dir ($(sinfo -h -N -o '%N: %c CPUs, %m MB'))"
echo "export SLURM_CONF=$dir/slurm.conf"
echo "export DSTBENCH_SLURM_DIR=$dir"
