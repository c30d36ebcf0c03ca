#!/usr/bin/env bash
# `make test-cluster`: run the smoke DAG through a real single-node SLURM on this machine and locally (--cores 2), and
# check that both runs give the same outputs and byte-identical result tables.
#
# Phases: install (SLURM + munge from the Debian archive, the venv's SLURM executor plugin from requirements-slurm.lock), start (munged, slurmctld,
# slurmd in a temporary state directory, all on 127.0.0.1; the test profile), prepare (copies of the workflow, a dry
# run that checks no job asks for a GPU), the SLURM run and the local run (at the same time), compare. The daemons it
# started are stopped by PID and the state directory removed on every exit, failures included.
# Needs root (apt-get, daemons) on Debian/Ubuntu. Settings (environment):
#   RNNMEM_SLURMCTLD_PORT / RNNMEM_SLURMD_PORT   ports of the test cluster (default 6917 / 6918)
#   RNNMEM_CLUSTER_TIMEOUT                       seconds allowed for each Snakemake run (default 1200)
#   RNNMEM_CLUSTER_KEEP=1                        keep the state directory (logs, both working directories)
#   RNNMEM_CLUSTER_PROFILE                       base profile (default profiles/slurm-cpu/config.v8+.yaml)
#   RNNMEM_CLUSTER_SEQUENTIAL=1                  the local run after the SLURM run, not alongside (cleaner timings)
# shellcheck disable=SC2317  # cleanup and node_idle run through trap and wait_for
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/cluster
PY=$REPO/.venv/bin/python
CTLD_PORT=${RNNMEM_SLURMCTLD_PORT:-6917}
SLURMD_PORT=${RNNMEM_SLURMD_PORT:-6918}
RUN_LIMIT=${RNNMEM_CLUSTER_TIMEOUT:-1200}
BASE_PROFILE=${RNNMEM_CLUSTER_PROFILE:-$REPO/profiles/slurm-cpu/config.v8+.yaml}
PREFIX=${TMPDIR:-/tmp}/rnnmem-slurm-test
LOCK=$PREFIX.lock
PACKAGES=(munge slurmctld slurmd slurm-client)
WORKFLOW_FILES=(Snakefile config.yaml workflow envs tests/config.smoke.yaml)
STATE=""
LOCAL_RUN_PID=""
declare -A PIDS=()
declare -a PHASES=()
T0=$(date +%s.%N)
PHASE_T0=$T0

log() { printf '[test-cluster] %s\n' "$*"; }
die() {
    printf '[test-cluster] FAILED: %s\n' "$*" >&2
    exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase_done() {
    local took
    took=$(elapsed "$PHASE_T0")
    PHASES+=("$(printf '%-10s %7s s' "$1" "$took")")
    log "phase $1: ${took} s"
    PHASE_T0=$(date +%s.%N)
}
show_tail() { # FILE [LINES]
    [[ -f $1 ]] || return 0
    printf -- '----- last lines of %s -----\n' "$1" >&2
    tail -n "${2:-40}" "$1" >&2
}

# --- processes ---------------------------------------------------------------------------------------------------

# True when PID is alive and its command line mentions DIR (so a recycled PID is never signalled).
owned_by() { # PID DIR
    local pid=$1 dir=$2
    local -a argv
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    mapfile -d '' -t argv 2>/dev/null <"/proc/$pid/cmdline" || return 1
    [[ "${argv[*]}" == *"$dir"* ]]
}

stop_pid() { # NAME PID DIR: TERM, up to 10 s, then KILL
    local name=$1 pid=$2 dir=$3
    owned_by "$pid" "$dir" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        owned_by "$pid" "$dir" || { log "stopped $name (pid $pid)"; return 0; }
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    log "killed $name (pid $pid)"
}

# Processes started under the cluster of state directory DIR (job steps and their children inherit SLURM_CONF).
# Reads /proc/*/environ with bash builtins only, so no helper process of this script is ever listed.
stray_pids() { # DIR
    local conf="SLURM_CONF=$1/etc/slurm.conf" proc pid entry
    local -a environ
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        mapfile -d '' -t environ 2>/dev/null <"$proc/environ" || continue
        for entry in "${environ[@]}"; do
            if [[ $entry == "$conf" ]]; then
                echo "$pid"
                break
            fi
        done
    done
}

# Stop everything a run with state directory DIR started: its daemons (pid files under DIR/pids) and stray job
# processes. Used for this run's cleanup and for leftovers of a previous run that was killed.
stop_cluster() { # DIR
    local dir=$1 name pidfile pid
    for name in slurmd slurmctld munged; do
        pidfile=$dir/pids/$name.pid
        [[ -f $pidfile ]] && stop_pid "$name" "$(<"$pidfile")" "$dir"
    done
    local -a strays
    mapfile -t strays < <(stray_pids "$dir")
    ((${#strays[@]})) || return 0
    log "stopping ${#strays[@]} leftover process(es) of $dir: ${strays[*]}"
    kill -TERM "${strays[@]}" 2>/dev/null || true
    for _ in $(seq 25); do
        mapfile -t strays < <(stray_pids "$dir")
        ((${#strays[@]})) || return 0
        sleep 0.2
    done
    kill -KILL "${strays[@]}" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    # A local run still going in the background (the SLURM run failed first): its snakemake and jobs go in the
    # sweep of processes that carry this cluster's SLURM_CONF, below.
    [[ -n $LOCAL_RUN_PID ]] && kill -TERM "$LOCAL_RUN_PID" 2>/dev/null
    if [[ -n $STATE && -d $STATE ]]; then
        # Snakemake runs still going (interrupted, or the other run failed): SIGTERM through their timeout.
        local pidfile
        for pidfile in "$STATE"/pids/*-run.pid; do
            [[ -f $pidfile ]] && owned_by "$(<"$pidfile")" "$STATE" && kill -TERM "$(<"$pidfile")" 2>/dev/null
        done
        if [[ -n ${PIDS[slurmctld]:-} ]] && owned_by "${PIDS[slurmctld]}" "$STATE"; then
            # Cancel what is still queued or running (after a failure or a timeout) before slurmd goes.
            if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
                log "cancelling the jobs still in the queue"
                scancel --user="$(id -un)" 2>/dev/null
                for _ in $(seq 30); do
                    [[ -z $(squeue -h -t PENDING,RUNNING,COMPLETING -o %i 2>/dev/null) ]] && break
                    sleep 0.5
                done
            fi
        fi
        stop_cluster "$STATE"
        if [[ ${RNNMEM_CLUSTER_KEEP:-0} == 1 ]]; then
            log "kept the state directory $STATE (RNNMEM_CLUSTER_KEEP=1)"
        else
            rm -rf "$STATE"
        fi
    fi
    if ((${#PHASES[@]})); then
        log "phase times:"
        printf '    %s\n' "${PHASES[@]}"
    fi
    log "total: $(elapsed "$T0") s (load average now: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs)"
    if ((rc == 0)); then
        log "PASSED"
    else
        log "FAILED (exit $rc)" >&2
    fi
    exit "$rc"
}

port_in_use() { # PORT: something already listens on it (any address)
    "$PY" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("0.0.0.0", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

# --- install -----------------------------------------------------------------------------------------------------

install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "SLURM and munge already installed: $(dpkg-query -W -f='${Package} ${Version}, ' "${PACKAGES[@]}")"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand (Debian/Ubuntu packages)"
    log "installing ${missing[*]} from the Debian archive"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists once, only when they do not know the packages yet.
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -q >"$PREFIX.apt.log" 2>&1 || { show_tail "$PREFIX.apt.log"; die "apt-get update failed"; }
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}" >"$PREFIX.apt.log" 2>&1 \
        || { show_tail "$PREFIX.apt.log"; die "apt-get install ${missing[*]} failed"; }
    rm -f "$PREFIX.apt.log"
}

ensure_plugin() {
    [[ -x $PY ]] || die "$PY not found: run 'make venv' first"
    if "$PY" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null; then
        log "venv: snakemake-executor-plugin-slurm $("$PY" -m pip show snakemake-executor-plugin-slurm 2>/dev/null \
            | sed -n 's/^Version: //p')"
        return 0
    fi
    log "installing the SLURM executor plugin into the venv (requirements-slurm.lock: locked versions and hashes)"
    (cd "$REPO" && "$PY" -m pip install -q --require-hashes -r requirements-slurm.lock) \
        || die "pip install --require-hashes -r requirements-slurm.lock failed"
    "$PY" -c 'import snakemake_executor_plugin_slurm' || die "the SLURM executor plugin is still not importable"
}

# --- start -------------------------------------------------------------------------------------------------------

start_daemon() { # NAME LOGFILE COMMAND...: start in the foreground mode, in the background; record the PID
    local name=$1 logfile=$2
    shift 2
    "$@" >"$logfile" 2>&1 9>&- &
    PIDS[$name]=$!
    echo "$!" >"$STATE/pids/$name.pid"
    log "started $name (pid $!)"
}

wait_for() { # DESCRIPTION SECONDS LOGFILE PID COMMAND...: poll COMMAND until it succeeds
    local what=$1 limit=$2 logfile=$3 pid=$4
    shift 4
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_tail "$logfile"
            die "$what: the daemon (pid $pid) exited; see its log above"
        fi
        if ((SECONDS >= end)); then
            show_tail "$logfile"
            die "$what: not ready after $limit s"
        fi
        sleep 0.2
    done
}

node_idle() { [[ $(sinfo -h -N -n localhost -o %t 2>/dev/null) == idle ]]; }

start_cluster() {
    local cpus real_memory mem def_mem
    read -r cpus real_memory < <(slurmd -C | awk '/^NodeName=/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2] }
        print c, m }')
    [[ -n $cpus && -n $real_memory ]] || die "could not read CPUs and RealMemory from 'slurmd -C'"
    ((cpus >= 2)) || die "'slurmd -C' finds $cpus CPU(s); the test node needs 2 (dlk jobs ask for 2)"
    mem=$((real_memory * 9 / 10))  # below what slurmd detects, or it drains the node
    def_mem=$((mem / 4))           # a job that names no memory takes a quarter of the node
    for port in "$CTLD_PORT" "$SLURMD_PORT"; do
        ! port_in_use "$port" || die "port $port is in use (a SLURM of another run or another service?); \
choose others with RNNMEM_SLURMCTLD_PORT / RNNMEM_SLURMD_PORT"
    done

    mkdir -p "$STATE"/{etc,munge,slurm/state,slurm/spool,log,pids,run}
    chmod 755 "$STATE" "$STATE/munge"  # munged insists that every directory above its socket is searchable
    sed -e "s|@STATE@|$STATE|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@CPUS@|2|g" -e "s|@REAL_MEMORY@|$mem|g" -e "s|@DEF_MEM_PER_CPU@|$def_mem|g" \
        -e "s|@MIN_JOB_AGE@|300|g" "$HERE/slurm.conf.in" >"$STATE/etc/slurm.conf"
    export SLURM_CONF=$STATE/etc/slurm.conf
    log "node: 2 CPUs, RealMemory=$mem MB (slurmd -C: $cpus CPUs, $real_memory MB), DefMemPerCPU=$def_mem MB; \
ports $CTLD_PORT/$SLURMD_PORT"

    # munge: a fresh key, socket, pid and log inside the state directory.
    (umask 077 && head -c 1024 /dev/urandom >"$STATE/munge/munge.key")
    start_daemon munged "$STATE/log/munged.out" munged --foreground \
        --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
        --log-file="$STATE/log/munged.log" --pid-file="$STATE/run/munged.pid" --seed-file="$STATE/munge/munged.seed"
    wait_for "munged" 20 "$STATE/log/munged.out" "${PIDS[munged]}" \
        bash -c "munge -S '$STATE/munge/munge.socket' -n | unmunge -S '$STATE/munge/munge.socket'"

    start_daemon slurmctld "$STATE/log/slurmctld.out" slurmctld -D -i -f "$SLURM_CONF"
    wait_for "slurmctld" 30 "$STATE/log/slurmctld.log" "${PIDS[slurmctld]}" scontrol ping
    start_daemon slurmd "$STATE/log/slurmd.out" slurmd -D -N localhost -f "$SLURM_CONF"
    wait_for "node localhost idle in sinfo" 60 "$STATE/log/slurmd.log" "${PIDS[slurmd]}" node_idle
    log "sinfo: $(sinfo -h -N -o '%N %t %c CPUs %m MB' | tr '\n' ' ')"
    # The jobstep plugin (inside each job) removes every SLURM_* variable, SLURM_CONF included, before it calls
    # srun; on a real cluster srun then finds /etc/slurm/slurm.conf. This cluster's configuration is not there (the
    # test leaves /etc alone), so the jobs find an srun first on PATH that names it.
    mkdir -p "$STATE/bin"
    printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$STATE/bin/srun"
    chmod 755 "$STATE/bin/srun"
    echo "$mem" >"$STATE/real_memory"
}

# --- runs --------------------------------------------------------------------------------------------------------

copy_workflow() { # DEST
    local name
    for name in "${WORKFLOW_FILES[@]}"; do
        mkdir -p "$1/$(dirname "$name")"
        cp -r "$REPO/$name" "$1/$name"
    done
    find "$1" -name __pycache__ -prune -exec rm -rf {} +
}

run_snakemake() { # LABEL WORKDIR LOGFILE ARGS...
    local label=$1 workdir=$2 logfile=$3 tag rc
    shift 3
    tag=${label// /-}
    log "$label: snakemake $* (log: $logfile)"
    # Snakemake ignores SIGTERM while SLURM jobs run: timeout sends SIGKILL 30 s after SIGTERM. The pipeline runs in
    # the background and this shell waits for it, so that a signal to this script runs its cleanup at once. The full
    # log goes to LOGFILE; only the progress lines are shown.
    rm -f "$STATE/$tag.rc"
    {
        (
            echo "$BASHPID" >"$STATE/pids/$tag.pid"  # exec keeps the PID: it becomes timeout's
            cd "$workdir" || exit 1
            PATH="$STATE/bin:$REPO/.venv/bin:$PATH" RNNMEM_DEVICE=cpu exec timeout -k 30 "$RUN_LIMIT" \
                "$PY" -m snakemake --snakefile "$workdir/Snakefile" --directory "$workdir" \
                --configfile tests/config.smoke.yaml "$@"
        )
        echo "$?" >"$STATE/$tag.rc"
    } 2>&1 9>&- | tee "$logfile" 9>&- \
        | awk -v label="[test-cluster] $label:" '/ steps \(/ { print label, $0; fflush() }' 9>&- &
    wait "$!" || true
    rc=$(cat "$STATE/$tag.rc" 2>/dev/null || echo 1)
    if ((rc != 0)); then
        show_tail "$logfile" 60
        if [[ $label == SLURM* ]]; then
            show_tail "$STATE/log/slurmctld.log" 15
            show_tail "$STATE/log/slurmd.log" 15
        fi
        ((rc == 124 || rc == 137)) && die "$label: snakemake did not finish within $RUN_LIMIT s (timeout)"
        die "$label: snakemake failed (exit $rc); see the log tail above"
    fi
    grep -q "steps (100%) done" "$logfile" || { show_tail "$logfile"; die "$label: snakemake did not report 100% done"; }
}

# This node has no GPU: a job that asks for one is refused by sbatch ("Invalid generic resource (gres)
# specification"). The test profile comes from profiles/slurm-cpu, which must set gpu: 0 for every rule that declares
# gpu=1; a dry run with the test profile finds the rules it misses before anything is submitted.
check_no_gpu_requests() { # WORKDIR LOGFILE
    local rules
    (cd "$1" && PATH="$STATE/bin:$REPO/.venv/bin:$PATH" "$PY" -m snakemake --dry-run --profile "$STATE/profile" \
        --snakefile "$1/Snakefile" --directory "$1" --configfile tests/config.smoke.yaml) >"$2" 2>&1 9>&- \
        || { show_tail "$2"; die "dry run with the test profile failed"; }
    rules=$(awk '/^(local)?rule [A-Za-z0-9_]+:/ { rule = $2; sub(":", "", rule) }
                 /^ +resources:/ && (/[ ,]gpus?=[1-9]/ || /gres=[^,]*gpu/) { print rule }' "$2" | sort -u | tr '\n' ' ')
    [[ -z $rules ]] && return 0
    local rule snippet=""
    for rule in $rules; do snippet+=$'\n'"  $rule:"$'\n'"    gpu: 0"; done
    die "${BASE_PROFILE#"$REPO"/} requests a GPU for rule(s): ${rules% }. This test node has none and sbatch refuses \
such jobs ('Invalid generic resource (gres) specification'), as would any GPU-less cluster. The profile needs, under \
its set-resources (keeping the rules' other settings):
set-resources:$snippet"
}

check_jobs_went_through_slurm() { # WORKDIR LOGFILE
    local submitted logs
    submitted=$(grep -c "submitted with SLURM jobid" "$2" || true)
    logs=$(find "$1/.snakemake/slurm_logs" -name '*.log' 2>/dev/null | wc -l)
    log "SLURM run: $submitted jobs submitted with sbatch, $logs SLURM job logs"
    ((submitted > 0)) || die "SLURM run: no job was submitted to SLURM (did Snakemake run them locally?)"
    ((logs == submitted)) || die "SLURM run: $submitted jobs submitted but $logs SLURM job logs"
}

# --- main --------------------------------------------------------------------------------------------------------

main() {
    ((EUID == 0)) || die "needs root (apt-get install and the SLURM daemons); run it as root, e.g. in a container or CI"
    exec 9>"$LOCK"
    flock -n 9 || die "another 'make test-cluster' holds $LOCK"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # Leftovers of a previous run that was killed before its cleanup: only its own daemons (pid files in its state
    # directory, command line naming that directory) and the processes of its jobs.
    local old found=0
    for old in "$PREFIX".*/; do
        [[ -d $old ]] || continue
        old=${old%/}
        log "cleaning up after a previous run: $old"
        stop_cluster "$old"
        rm -rf "$old"
        found=1
    done
    ((found)) && phase_done leftovers

    install_packages
    ensure_plugin
    for tool in munged munge slurmctld slurmd sbatch squeue sinfo scontrol scancel timeout flock; do
        command -v "$tool" >/dev/null || die "$tool not found after the install"
    done
    phase_done install

    STATE=$(mktemp -d "$PREFIX.XXXXXX")
    start_cluster
    "$PY" "$HERE/make_profile.py" "$BASE_PROFILE" "$HERE/profile-overrides.yaml" "$STATE/profile" \
        "$(<"$STATE/real_memory")" || die "could not write the test profile"
    phase_done start

    # Both copies at once: the two runs see the same workflow even if the project changes meanwhile.
    copy_workflow "$STATE/work-slurm"
    copy_workflow "$STATE/work-local"
    check_no_gpu_requests "$STATE/work-slurm" "$STATE/log/snakemake-dry-run.log"
    phase_done prepare

    local runs_t0 slurm_s local_s
    runs_t0=$(date +%s.%N)
    if [[ ${RNNMEM_CLUSTER_SEQUENTIAL:-0} == 1 ]]; then
        run_snakemake "SLURM run" "$STATE/work-slurm" "$STATE/log/snakemake-slurm.log" --profile "$STATE/profile"
        check_jobs_went_through_slurm "$STATE/work-slurm" "$STATE/log/snakemake-slurm.log"
        phase_done "SLURM run"
        run_snakemake "local run" "$STATE/work-local" "$STATE/log/snakemake-local.log" --cores 2
        phase_done "local run"
    else
        # The local run goes alongside the SLURM run: it fills the CPU time the SLURM run leaves idle (status
        # polling, job start-up) and, on a machine with more than the node's 2 CPUs, runs on the others.
        (
            t0=$(date +%s.%N)
            run_snakemake "local run" "$STATE/work-local" "$STATE/log/snakemake-local.log" --cores 2
            elapsed "$t0" >"$STATE/local-run.seconds"
        ) 9>&- &
        LOCAL_RUN_PID=$!
        run_snakemake "SLURM run" "$STATE/work-slurm" "$STATE/log/snakemake-slurm.log" --profile "$STATE/profile"
        slurm_s=$(elapsed "$runs_t0")
        check_jobs_went_through_slurm "$STATE/work-slurm" "$STATE/log/snakemake-slurm.log"
        wait "$LOCAL_RUN_PID" || { LOCAL_RUN_PID=""; die "local run failed (see above)"; }
        LOCAL_RUN_PID=""
        local_s=$(<"$STATE/local-run.seconds")
        PHASES+=("$(printf '%-10s %7s s' "SLURM run" "$slurm_s")")
        PHASES+=("$(printf '%-10s %7s s' "local run" "$local_s")")
        log "SLURM run: $slurm_s s, local run: $local_s s (at the same time)"
        phase_done "both runs"
    fi

    "$PY" "$HERE/compare.py" "$STATE/work-local" "$STATE/work-slurm" \
        || die "the SLURM run's outputs differ from the local run's (list above)"
    phase_done compare
}

# One line, so that bash never reads on in this file after main (it may have been edited meanwhile).
main "$@"; exit
