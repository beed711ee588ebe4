#!/usr/bin/env bash
# Stop the cluster started by slurm-up.sh (the daemons whose pid files are in
# $DSTBENCH_SLURM_DIR/run) and remove its folder.
set -uo pipefail
dir=${DSTBENCH_SLURM_DIR:?set DSTBENCH_SLURM_DIR (slurm-up.sh prints it)}
for name in slurmd slurmctld slurmdbd mysqld munged; do
    pidfile="$dir/run/$name.pid"
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
sleep 2
rm -rf "$dir"
