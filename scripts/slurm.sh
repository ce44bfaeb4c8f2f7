#!/usr/bin/env bash
# A Slurm cluster on this one machine, for the Slurm end-to-end tests and for trying
# `torchx run -s slurm` by hand (Debian's slurm-wlm + munge; needs root).
#
#   bash scripts/slurm.sh start    # install if missing, configure, start, wait until nodes are idle
#   bash scripts/slurm.sh status   # what runs, and whether this script started it (exit 0 = up)
#   bash scripts/slurm.sh stop     # stop exactly the daemons `start` started (by PID), nothing else,
#                                  # then remove the slurm.conf it wrote if no Slurm daemon is left
#
# `start` installs slurm-wlm and munge with apt-get when missing, writes /etc/slurm/slurm.conf
# (this host as Slurm node `hostname -s`, addressed on 127.0.0.1, proctrack/linuxproc, task/none,
# select/cons_tres, SlurmUser=root, no accounting storage), starts munged, slurmctld and slurmd
# in the foreground of their own sessions (setsid; output in $LOCAL_SLURM_DIR/log), waits until
# sinfo shows the nodes idle, and records the PIDs (with each process's start time, so a
# recycled PID is never killed) in $LOCAL_SLURM_DIR/pids. It is idempotent: a daemon recorded
# there and still alive is reused, and so is one this script did not start (e.g. a system munged);
# `stop` leaves those alone.
#
# Two Slurm nodes by default, both this host (`<host>` and `<host>-2`, one slurmd each on ports
# 6818 and 6819): TorchX submits a role with num_replicas=N as a heterogeneous job of N
# components, and Slurm's backfill scheduler (the only one that starts heterogeneous jobs) needs
# a node per component before it starts one, even when they could share a node. With
# LOCAL_SLURM_NODES=1 it is a strictly single-node cluster (jobs with one replica only).
#
# Settings (environment):
#   LOCAL_SLURM_DIR     state, spool, logs and PID files (default /var/lib/torchx-lineage-slurm)
#   LOCAL_SLURM_NODES   Slurm nodes on this host (default 2; replicas per job at most this many)
#   LOCAL_SLURM_CPUS    CPUs each node offers to jobs (default 4; may exceed the real core count)
#   LOCAL_SLURM_TIMEOUT seconds `start` waits for the nodes to become idle (default 30)
set -euo pipefail

STATE=${LOCAL_SLURM_DIR:-/var/lib/torchx-lineage-slurm}
CPUS=${LOCAL_SLURM_CPUS:-4}
NODES=${LOCAL_SLURM_NODES:-2}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-30}
CONF=/etc/slurm/slurm.conf
MARKER="# Written by torchx-lineage scripts/slurm.sh"
HOST=$(hostname -s)
NODE_NAMES=("$HOST")
for ((i = 2; i <= NODES; i++)); do NODE_NAMES+=("$HOST-$i"); done
PARTITION=debug
# A clean environment for the daemons (not the caller's TORCHX_*, SLURM_* or PATH).
DAEMON_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)

say() { printf 'slurm.sh: %s\n' "$*"; }
die() { printf 'slurm.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, runs slurmd/slurmctld as SlurmUser=root)"
}

# --- PID bookkeeping: "<pid> <start time in clock ticks since boot>" per daemon -------------
start_time_of() { # the process's start time (field 22 of /proc/PID/stat), empty if gone
    local stat
    stat=$(cat "/proc/$1/stat" 2> /dev/null) || return 0
    stat=${stat##*) } # drop "pid (comm) ": comm may hold spaces and parentheses
    # shellcheck disable=SC2086
    set -- $stat
    # A zombie (the daemon exited, its new parent has not reaped it yet) counts as gone.
    case "$1" in Z | X) return 0 ;; esac
    echo "${20}"
}

recorded_pid() { # prints the PID recorded for daemon $1 if that very process is still alive
    local file="$STATE/pids/$1" pid started
    [ -f "$file" ] || return 1
    read -r pid started < "$file" || return 1
    [ -n "$pid" ] && [ "$(start_time_of "$pid")" = "$started" ] || return 1
    echo "$pid"
}

live_pids() { # PIDs of the live (not zombie) processes named $1
    ps -C "$1" -o pid=,stat= 2> /dev/null | awk '$2 !~ /^Z/ { print $1 }'
}

foreign_pid() { # a running daemon $1 that this script did not start (first match)
    local pid
    pid=$(live_pids "$1" | head -n1)
    [ -n "$pid" ] && ! recorded_pid "$1" > /dev/null && echo "$pid"
    return 0
}

record_pid() { # record daemon $1 = pid $2 (after checking it is alive)
    local started
    started=$(start_time_of "$2")
    [ -n "$started" ] || return 1
    echo "$2 $started" > "$STATE/pids/$1"
}

# --- install and configure ------------------------------------------------------------------
install_if_missing() {
    local missing=()
    for cmd in munged munge slurmctld slurmd sinfo squeue scontrol sbatch; do
        command -v "$cmd" > /dev/null || missing+=("$cmd")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get > /dev/null || die "missing ${missing[*]} and no apt-get to install slurm-wlm and munge"
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge > /dev/null
}

mem_mb() { # ~90% of this machine's memory shared by the nodes, in MB (each node's RealMemory)
    awk -v n="$NODES" '/^MemTotal:/ { printf "%d\n", $2 / 1024 * 0.9 / n }' /proc/meminfo
}

node_lines() { # one NodeName line per node, all on this host, each slurmd on its own port
    local i
    for i in "${!NODE_NAMES[@]}"; do
        echo "NodeName=${NODE_NAMES[i]} NodeAddr=127.0.0.1 NodeHostname=$HOST Port=$((6818 + i))" \
            "CPUs=$CPUS RealMemory=$(mem_mb) State=UNKNOWN"
    done
}

write_config() {
    [[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_SLURM_NODES must be a positive integer, not '$NODES'"
    [[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_SLURM_CPUS must be a positive integer, not '$CPUS'"
    mkdir -p /etc/slurm "$STATE"/{ctld,log,pids}
    for node in "${NODE_NAMES[@]}"; do mkdir -p "$STATE/spool/$node"; done
    if [ -f "$CONF" ] && ! grep -qxF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script; refusing to overwrite it (move it away to use the local test cluster)"
    fi
    local tmp
    tmp=$(mktemp "$CONF.XXXXXX")
    cat > "$tmp" << EOF
$MARKER
# A one-host cluster on 127.0.0.1 for tests; regenerated by every \`slurm.sh start\`.
ClusterName=torchx-lineage
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
AuthType=auth/munge
CredType=cred/munge
# Job credentials live 10 s (default 120). A requeued job waits that long before it may start
# again (TorchX requeues failed jobs with max_retries), so requeue tests take seconds, not minutes.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/log/slurmctld.pidfile
SlurmdPidFile=$STATE/log/slurmd-%n.pidfile
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Heterogeneous jobs (TorchX: num_replicas > 1) are started by the backfill scheduler only, which
# runs every 30 s by default: every second here.
SchedulerParameters=bf_interval=1,bf_hetjob_immediate,sched_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# The nodes below may offer more CPUs/memory than the machine has (tests oversubscribe).
SlurmdParameters=config_overrides
# Finished jobs stay visible to \`scontrol show job\` for an hour: waiting without accounting
# (launcher_plugin/slurm_status.py) reads their final state there.
MinJobAge=3600
KillWait=5
$(node_lines)
PartitionName=$PARTITION Nodes=$(IFS=,; echo "${NODE_NAMES[*]}") Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$tmp"
    if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$CONF"
        CONFIG_CHANGED=1
    fi
}

# --- daemons ----------------------------------------------------------------------------------
# Daemons are named munged, slurmctld and slurmd-<node>; each has $STATE/pids/<name> and
# $STATE/log/<name>.out (its stdout/stderr; Slurm's own logs are $STATE/log/slurm*.log).

launch() { # launch NAME CMD...: in its own session, output to $STATE/log/NAME.out, PID recorded
    local name=$1
    shift
    # setsid execs in place (this shell's background children are not group leaders), so $! is
    # the daemon itself; fd 9 (the lock) is not inherited.
    setsid "${DAEMON_ENV[@]}" "$@" < /dev/null >> "$STATE/log/$name.out" 2>&1 9>&- &
    local pid=$!
    sleep 0.2
    record_pid "$name" "$pid" || {
        tail -n 20 "$STATE/log/$name.out" >&2 || true
        fail_start "$name exited at once (output above, from $STATE/log/$name.out)"
    }
    STARTED+=("$name")
    say "started $name (pid $pid)"
}

munge_works() { munge -n 2> /dev/null | unmunge > /dev/null 2>&1; }

start_munged() {
    local pid
    if pid=$(recorded_pid munged); then
        say "munged already running (pid $pid, started by this script)"
        return
    fi
    if munge_works; then
        say "munged already running (not started by this script: left alone by stop)"
        return
    fi
    [ -f /etc/munge/munge.key ] || {
        say "creating /etc/munge/munge.key"
        mungekey --create --keyfile=/etc/munge/munge.key 2> /dev/null ||
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chmod 600 /etc/munge/munge.key
    }
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    if id munge > /dev/null 2>&1; then
        # As Debian's service runs it: user munge, owning its key and directories.
        chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge/munge.key
        launch munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    else
        launch munged munged --foreground --force
    fi
    for _ in $(seq 50); do
        munge_works && return
        sleep 0.1
    done
    fail_start "munged does not answer; see $STATE/log/munged.out and /var/log/munge/munged.log"
}

start_slurmctld() {
    local pid
    if pid=$(recorded_pid slurmctld); then
        say "slurmctld already running (pid $pid, started by this script)"
    elif pid=$(foreign_pid slurmctld) && [ -n "$pid" ]; then
        say "slurmctld already running (pid $pid, not started by this script: left alone by stop)"
    else
        launch slurmctld slurmctld -D
    fi
}

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

start_slurmd() { # start_slurmd INDEX: the slurmd of node NODE_NAMES[INDEX], port 6818 + INDEX
    local node=${NODE_NAMES[$1]} port=$((6818 + $1)) pid
    if pid=$(recorded_pid "slurmd-$node"); then
        say "slurmd of node $node already running (pid $pid, started by this script)"
    elif port_in_use "$port"; then
        say "port $port (node $node) already in use: reusing that slurmd (not started by this script: left alone by stop)"
    else
        launch "slurmd-$node" slurmd -D -N "$node"
    fi
}

node_state() { # the state sinfo shows for node $1 ("idle", "idle*" = not responding, ...)
    # (Slurm's clients retry an absent controller for ~10 s: bounded here.)
    timeout 5 sinfo --noheader --nodes="$1" --format=%T 2> /dev/null | head -n1
}

wait_for_idle() {
    local deadline=$((SECONDS + TIMEOUT)) node state pending name
    while :; do
        pending=()
        for node in "${NODE_NAMES[@]}"; do
            state=$(node_state "$node")
            case "$state" in
                idle | mixed | allocated | completing) ;; # up (busy only when reusing a cluster)
                down* | drained* | draining* | fail*)
                    # ReturnToService=2 resumes a node on registration; nudge one left down.
                    scontrol update nodename="$node" state=resume > /dev/null 2>&1 || true
                    pending+=("$node=$state")
                    ;;
                *) pending+=("$node=${state:-no answer}") ;;
            esac
        done
        [ ${#pending[@]} -eq 0 ] && break
        for name in "${STARTED[@]}"; do
            recorded_pid "$name" > /dev/null || {
                tail -n 20 "$STATE/log/$name.out" >&2 || true
                fail_start "$name exited while starting (output above, from $STATE/log/$name.out)"
            }
        done
        if [ $SECONDS -ge $deadline ]; then
            for log in "$STATE"/log/slurm*.log; do
                echo "--- $log" >&2
                tail -n 10 "$log" >&2 || true
            done
            fail_start "nodes not idle after ${TIMEOUT}s (sinfo: ${pending[*]})"
        fi
        sleep 0.3
    done
    say "nodes ${NODE_NAMES[*]} idle (partition $PARTITION, default)"
}

fail_start() { # stop what this invocation started, then fail
    echo "slurm.sh: error: $1; stopping the daemons this call started" >&2
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_daemons "${STARTED[i]}"
    done
    exit 1
}

stop_daemons() { # stop_daemons NAME...: SIGTERM each recorded PID at once, SIGKILL after 15 s
    local name pid
    local -A pids=()
    for name in "$@"; do
        if pid=$(recorded_pid "$name"); then
            kill -TERM "$pid" 2> /dev/null || true
            pids[$name]=$pid
        else
            rm -f "$STATE/pids/$name" # stale: that process is gone
        fi
    done
    for _ in $(seq 150); do
        for name in "${!pids[@]}"; do
            recorded_pid "$name" > /dev/null || {
                rm -f "$STATE/pids/$name"
                say "stopped $name (pid ${pids[$name]})"
                unset "pids[$name]"
            }
        done
        [ ${#pids[@]} -eq 0 ] && return 0
        sleep 0.1
    done
    for name in "${!pids[@]}"; do
        say "$name (pid ${pids[$name]}) ignored SIGTERM for 15 s; sending SIGKILL"
        recorded_pid "$name" > /dev/null && kill -KILL "${pids[$name]}" 2> /dev/null
        rm -f "$STATE/pids/$name"
    done
    return 0
}

recorded_names() { # every daemon with a PID file, slurmd-* first, munged last (stop order)
    local f
    for f in "$STATE"/pids/slurmd-*; do [ -e "$f" ] && basename "$f"; done
    for f in slurmctld munged; do [ -e "$STATE/pids/$f" ] && echo "$f"; done
    return 0
}

lock() {
    mkdir -p "$STATE"
    exec 9> "$STATE/lock"
    flock -w 120 9 || die "another slurm.sh holds $STATE/lock"
}

cmd_start() {
    require_root
    lock
    local t0=$SECONDS i name
    STARTED=()
    install_if_missing
    write_config
    if [ -n "${CONFIG_CHANGED:-}" ] && recorded_pid slurmctld > /dev/null; then
        say "$CONF changed: restarting the Slurm daemons this script started"
        # shellcheck disable=SC2046
        stop_daemons $(recorded_names | grep '^slurmd-')
        stop_daemons slurmctld
    fi
    start_munged
    start_slurmctld
    for i in "${!NODE_NAMES[@]}"; do start_slurmd "$i"; done
    wait_for_idle
    say "ready in $((SECONDS - t0)) s (config $CONF, state and logs $STATE)"
}

cmd_stop() {
    require_root
    lock
    local names
    names=$(recorded_names)
    [ -n "$names" ] || say "no daemon started by this script is recorded in $STATE/pids"
    # The slurmds first, then the controller and munged (each group in parallel).
    # shellcheck disable=SC2046
    stop_daemons $(grep '^slurmd-' <<< "$names")
    # shellcheck disable=SC2046
    stop_daemons $(grep -v '^slurmd-' <<< "$names")
    # With our slurm.conf but no controller, every Slurm client retries for ~9 s (TorchX's slurm
    # --dryrun runs sinfo); without one it fails at once. `start` writes it again.
    if [ -f "$CONF" ] && grep -qxF "$MARKER" "$CONF" && [ -z "$(live_pids slurmctld)" ] &&
        [ -z "$(live_pids slurmd)" ]; then
        rm -f "$CONF"
        say "removed $CONF (no Slurm daemon left running)"
    fi
}

cmd_status() {
    local pid up=1 name node
    for name in munged slurmctld; do
        if pid=$(recorded_pid "$name"); then
            echo "$name: running (pid $pid, started by slurm.sh)"
        elif pid=$(live_pids "$name" | head -n1) && [ -n "$pid" ]; then
            echo "$name: running (pid $pid, not started by slurm.sh)"
        else
            echo "$name: not running"
        fi
    done
    if [ -z "$(live_pids slurmctld)" ]; then
        echo "sinfo: not asked (no slurmctld runs on this host)"
        exit 3
    fi
    for node in "${NODE_NAMES[@]}"; do
        if pid=$(recorded_pid "slurmd-$node"); then
            echo "slurmd of node $node: running (pid $pid, started by slurm.sh)"
        else
            echo "slurmd of node $node: not started by slurm.sh"
        fi
        case "$(node_state "$node")" in
            idle | mixed | allocated | completing) ;;
            *) up=0 ;;
        esac
    done
    timeout 5 sinfo 2> /dev/null || echo "sinfo: no answer from slurmctld"
    [ $up -eq 1 ] || exit 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
