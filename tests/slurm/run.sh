#!/usr/bin/env bash
# make test-slurm: a real one-node Slurm on this machine, and the job templates of jobs/
# submitted to it with sbatch and checked.
#
#   tests/slurm/run.sh            (as root; `make test-slurm` runs `make setup` first)
#
# What it does:
#   1. installs slurm-wlm and munge with apt-get if a command is missing;
#   2. stops daemons and job processes left over by an earlier run of this script (pid files
#      and an environment marker; nothing else is touched), then makes a fresh state directory
#      $PQML_SLURM_BASE/run.XXXXXX (default base /tmp/pqml-test-slurm; the newest 3 are kept);
#   3. starts its own munged (private socket), slurmctld and slurmd (slurm.conf.in, ports
#      16817/16818), and waits for the node to be idle;
#   4. checks:  srun     jobs/sample_srun.sbatch (2 ranks, srun --mpi=pmix): exit 0, output complete
#               mpirun   jobs/sample_mpirun.sbatch (2 ranks, mpirun): the same, and its observables
#                        bit-identical to the srun job's
#               requeue  jobs/sample_requeue.sbatch: SIGUSR1 mid-run (scancel --signal=USR1 --batch),
#                        checkpoint, requeue, resume, exit 0; output bit-identical to an
#                        uninterrupted mpirun run of the same config
#               term     jobs/sample_requeue.sbatch: SIGTERM mid-run (scancel): checkpoint, exit 3,
#                        CANCELLED and not requeued; resubmitted, it resumes and ends bit-identical
#               term_mpirun  the same template with mpirun in place of srun: mpirun exits 1 on
#                        SIGTERM, the template still reports a checkpointed stop (exit 3)
#   5. cancels its jobs, stops its daemons by pid, prints the logs if anything failed.
# The last line is `slurm: N passed, M failed`; exit status 0 only if nothing failed.
#
# Environment: VPY (venv python, default <repo>/.venv/bin/python), PQML_SLURM_BASE,
# PQML_SLURM_CTLD_PORT / PQML_SLURM_SLURMD_PORT, PQML_SLURM_CHECKS (default "srun mpirun requeue term term_mpirun";
# also available: "timelimit", the real --signal=B:USR1@60 before a 3-minute limit, 5-10 min).
set -euo pipefail

T_START=$(date +%s)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VPY=${VPY:-$REPO/.venv/bin/python}
case $VPY in /*) ;; *) VPY=$PWD/$VPY ;; esac
VENV_DIR=$(cd "$(dirname "$VPY")/.." && pwd)
BASE=${PQML_SLURM_BASE:-/tmp/pqml-test-slurm}
CTLD_PORT=${PQML_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${PQML_SLURM_SLURMD_PORT:-16818}
CHECKS=${PQML_SLURM_CHECKS:-srun mpirun requeue term term_mpirun}
MARK=PQML_SLURM_STATE          # environment marker carried by our daemons and job processes
export PATH="$PATH:/usr/sbin:/sbin"
export LC_ALL=C

STATE=""                       # this run's state directory (set once created)
CHECK_PID=""                   # the check subshell running now
PASSED=0
FAILED=0
SETUP_DONE=0

say() { echo "slurm-test: $*"; }
elapsed() { echo "$(( $(date +%s) - T_START ))s"; }

# --------------------------------------------------------------------------------------
# process helpers: only processes started by this script (or an earlier run of it)
# --------------------------------------------------------------------------------------

# pids whose environment carries MARK=<dir> (daemons, slurmstepd and job processes of that run)
marked_pids() {
    local dir=$1 f pid
    for f in /proc/[0-9]*/environ; do
        pid=${f#/proc/}; pid=${pid%/environ}
        [ "$pid" = "$$" ] && continue
        [ "$pid" = "${BASHPID:-$$}" ] && continue
        if { tr '\0' '\n' < "$f"; } 2>/dev/null | grep -qxF "$MARK=$dir"; then
            echo "$pid"
        fi
    done
}

# kill PIDS: TERM, up to 10 s, then KILL
kill_pids() {
    local pids=("$@") alive i p
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for i in $(seq 1 50); do
        alive=()
        for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then alive+=("$p"); fi; done
        [ ${#alive[@]} -eq 0 ] && return 0
        sleep 0.2
    done
    say "killing (KILL) ${alive[*]}"
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

start_time() {   # PID: its start time in clock ticks since boot (field 22 of /proc/PID/stat)
    { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $20}'; } 2>/dev/null || true
}

record_proc() {   # PID COMM: remember a process this run started (DIR/pids/procs)
    echo "$1 $2 $(start_time "$1")" >> "$STATE/pids/procs"
}

# the recorded pids that are still the same process (same name and start time: no pid reuse)
recorded_procs() {
    local dir=$1 pid name t0 comm
    [ -f "$dir/pids/procs" ] || return 0
    while read -r pid name t0; do
        [ -n "$pid" ] || continue
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [ "$comm" = "$name" ] && [ "$(start_time "$pid")" = "$t0" ]; then echo "$pid"; fi
    done < "$dir/pids/procs"
}

stop_run_processes() {   # DIR: everything a run of this script left alive
    local dir=$1 pids
    mapfile -t pids < <( { recorded_procs "$dir"; marked_pids "$dir"; } | sort -un)
    if [ ${#pids[@]} -gt 0 ]; then
        say "stopping ${#pids[@]} process(es) of $(basename "$dir"):$(for p in "${pids[@]}"; do
            printf ' %s(%s)' "$p" "$(cat "/proc/$p/comm" 2>/dev/null || echo '?')"; done)"
        kill_pids "${pids[@]}"
    fi
}

# --------------------------------------------------------------------------------------
# Slurm helpers
# --------------------------------------------------------------------------------------
TERMINAL="COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY PREEMPTED BOOT_FAIL DEADLINE"

job_field() {   # JOBID FIELD -> value from `scontrol show job` (empty if unknown)
    timeout 15 scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

is_terminal() { case " $TERMINAL " in *" $1 "*) return 0 ;; esac; return 1; }

# wait_job_end JOBID TIMEOUT [MIN_RESTARTS]: until the job is in a terminal state (with at
# least MIN_RESTARTS restarts); sets JOB_STATE, JOB_EXIT, JOB_RESTARTS. 1 on timeout.
# A job that stays terminal with fewer restarts for 10 s is taken as ended (not requeued).
wait_job_end() {
    local id=$1 limit=$2 min_restarts=${3:-0} t0=$SECONDS t_end=""
    while :; do
        JOB_STATE=$(job_field "$id" JobState)
        JOB_EXIT=$(job_field "$id" ExitCode)
        JOB_RESTARTS=$(job_field "$id" Restarts)
        if is_terminal "$JOB_STATE"; then
            [ "${JOB_RESTARTS:-0}" -ge "$min_restarts" ] && return 0
            t_end=${t_end:-$SECONDS}
            [ $((SECONDS - t_end)) -ge 10 ] && return 0
        else
            t_end=""
        fi
        if [ $((SECONDS - t0)) -ge "$limit" ]; then
            say "timeout after ${limit}s waiting for job $id (state ${JOB_STATE:-?}, restarts ${JOB_RESTARTS:-?})"
            return 1
        fi
        sleep 0.5
    done
}

render() {   # TEMPLATE OUT --set ... : render a template with jobs/render.py
    local tmpl=$1 out=$2; shift 2
    "$VPY" "$REPO/jobs/render.py" "$REPO/jobs/$tmpl" --set "VENV=$VENV_DIR" --set PARTITION=debug "$@" -o "$out"
}

submit() {   # SCRIPT [VAR=VALUE...]: sbatch from $JOBS (job logs land there); prints the job id
    local out script=$1; shift
    out=$(cd "$JOBS" && env "$MARK=$STATE" "$@" timeout 30 sbatch --parsable "$script") || return 1
    echo "${out%%;*}"
}

write_config() {   # FILE OUTPUT_H5 [extra TOML]: the small 2D test config
    cat > "$1" <<EOF
# written by tests/slurm/run.sh
[lattice]
shape = [${SHAPE:-32, 32}]

[action]
kind = "mrf"
w = 1.0
a = 1.52425
b = 0.175

[sampler]
seed = 20240607
n_therm = 20
n_sweeps = ${N_SWEEPS:-200}
measure_every = ${MEASURE_EVERY:-2}

[output]
path = "$2"
${3:-}
EOF
}

show_log() {   # FILE [N]: the last N lines (default all) of a file, indented
    local f=$1 n=${2:-}
    if [ -f "$f" ]; then
        echo "----- $f${n:+ (last $n lines)}"
        if [ -n "$n" ]; then tail -n "$n" "$f"; else cat "$f"; fi | sed 's/^/    /'
    else
        echo "----- $f: (missing)"
    fi
}

check_h5() { "$VPY" "$HERE/check_h5.py" "$@"; }

# the script's commands with backslash-continued lines joined (comments dropped)
joined_lines() { sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$1" | grep -v '^[[:space:]]*#'; }

# run one job to its end and check it: NAME TEMPLATE CONFIG OUT_H5 [VAR=VALUE for the job...]
run_plain_job() {
    local name=$1 tmpl=$2 cfg=$3 h5=$4 id; shift 4
    render "$tmpl" "$JOBS/$name.sbatch" --set "CONFIG=$cfg" --set NTASKS_PER_NODE=2 \
        --set TIME=00:05:00 --set "JOB_NAME=pqml-$name"
    id=$(submit "$JOBS/$name.sbatch" "$@")
    say "$name: submitted job $id ($tmpl)"
    wait_job_end "$id" 240 || { show_log "$JOBS/pqml-$name-$id.out"; return 1; }
    say "$name: job $id $JOB_STATE, exit code $JOB_EXIT"
    [ "$JOB_STATE" = COMPLETED ] && [ "$JOB_EXIT" = "0:0" ] \
        || { show_log "$JOBS/pqml-$name-$id.out"; return 1; }
    grep -q "^wrote " "$JOBS/pqml-$name-$id.out" \
        || { say "$name: the job log does not say 'wrote ...'"; show_log "$JOBS/pqml-$name-$id.out"; return 1; }
    check_h5 complete "$h5"
}

# --------------------------------------------------------------------------------------
# the checks (each runs in a subshell with set -e; failure = nonzero status)
# --------------------------------------------------------------------------------------
check_srun() {
    joined_lines "$REPO/jobs/sample_srun.sbatch" | grep -Eq 'srun .*--mpi=pmix.* parallel_qftml sample' \
        || { say "srun: jobs/sample_srun.sbatch does not launch the run with 'srun --mpi=pmix'"; return 1; }
    write_config "$WORK/srun.toml" "$WORK/srun.h5"
    run_plain_job srun sample_srun.sbatch "$WORK/srun.toml" "$WORK/srun.h5"
}

check_mpirun() {
    write_config "$WORK/mpirun.toml" "$WORK/mpirun.h5"
    run_plain_job mpirun sample_mpirun.sbatch "$WORK/mpirun.toml" "$WORK/mpirun.h5"
    if [ -f "$WORK/srun.h5" ]; then
        say "mpirun: compare with the srun job's output"
        check_h5 same "$WORK/srun.h5" "$WORK/mpirun.h5"
    else
        say "mpirun: no srun output to compare with (srun check failed or not run)"
        return 1
    fi
}

# requeue_case NAME TIME SIGNAL_SECONDS N_SWEEPS MANUAL WAIT_LIMIT: submit sample_requeue.sbatch
# on a 512x512 config; MANUAL=yes: send SIGUSR1 ourselves once the job is sampling (as
# `--signal=B:USR1@T` would); MANUAL=no: let Slurm send it before TIME runs out. Then: the job
# must be requeued, resume and complete, with output bit-identical to an uninterrupted run.
requeue_case() {
    local name=$1 time=$2 signal_s=$3 n_sweeps=$4 manual=$5 limit=$6
    local t=$REPO/jobs/sample_requeue.sbatch id log pat t0 n_ckpt ref_rc
    for pat in '^#SBATCH --signal=B:USR1@\{\{SIGNAL_SECONDS\}\}' '^#SBATCH --requeue' \
               '^#SBATCH --open-mode=append'; do
        grep -Eq -- "$pat" "$t" || { say "$name: $t has no line matching /$pat/"; return 1; }
    done
    for pat in 'srun .*--mpi=pmix.* parallel_qftml sample .*--resume.*&$' 'scontrol requeue'; do
        joined_lines "$t" | grep -Eq -- "$pat" || { say "$name: $t has no command matching /$pat/"; return 1; }
    done
    # the package side: `sample --resume`, exit code 3 after SIGUSR1, [checkpoint] in the config
    if ! "$VPY" -m parallel_qftml sample --help 2>/dev/null | grep -q -- '--resume'; then
        say "$name: NOT READY: 'pqml sample' has no --resume option (the package's checkpoint/resume"
        say "$name: feature is missing in $REPO); nothing submitted"
        return 1
    fi

    # Configurations are saved too (output.save_every), so /configs/phi is compared as well.
    local extra="save_every = 1000

[checkpoint]
every = 500
keep = 2
dir = \"$WORK/ckpt-$name\""
    SHAPE="512, 512" N_SWEEPS=$n_sweeps MEASURE_EVERY=4 write_config "$WORK/$name.toml" "$WORK/$name.h5" "$extra"
    SHAPE="512, 512" N_SWEEPS=$n_sweeps MEASURE_EVERY=4 write_config "$WORK/$name-ref.toml" "$WORK/$name-ref.h5" \
        "${extra//ckpt-$name/ckpt-$name-ref}"

    render sample_requeue.sbatch "$JOBS/$name.sbatch" --set "CONFIG=$WORK/$name.toml" --set NTASKS_PER_NODE=2 \
        --set "TIME=$time" --set "SIGNAL_SECONDS=$signal_s" --set "JOB_NAME=pqml-$name"
    id=$(submit "$JOBS/$name.sbatch")
    log=$JOBS/pqml-$name-$id.out
    say "$name: submitted job $id (TIME=$time, SIGNAL_SECONDS=$signal_s, $n_sweeps sweeps)"

    if [ "$manual" = yes ]; then
        # wait for measurements (a progress line of the sweeps, or a first checkpoint), then signal
        t0=$SECONDS
        until grep -q '^sampling \[' "$log" 2>/dev/null || [ -n "$(ls -A "$WORK/ckpt-$name" 2>/dev/null)" ]; do
            JOB_STATE=$(job_field "$id" JobState)
            if is_terminal "$JOB_STATE"; then
                say "$name: job $id ended ($JOB_STATE, exit $(job_field "$id" ExitCode)) before it was signalled"
                show_log "$log"; return 1
            fi
            [ $((SECONDS - t0)) -lt 120 ] || { say "$name: no progress line after 120 s"; show_log "$log"; return 1; }
            sleep 0.2
        done
        say "$name: job $id is sampling ($(grep '^sampling \[' "$log" | tail -n 1 | tr -s ' ')); sending SIGUSR1 to its batch shell"
        timeout 15 scancel --signal=USR1 --batch "$id"
    fi

    # The uninterrupted reference run (mpirun -n 2, outside Slurm) runs in the background
    # meanwhile, partly while the requeued job waits to restart (~11 s). It carries the marker,
    # so the cleanup stops it if this check fails.
    t0=$SECONDS
    ( cd "$WORK" && exec env "$MARK=$STATE" NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$WORK/numba-reference}" \
        timeout $((limit + 100)) mpirun --allow-run-as-root --oversubscribe -n 2 \
        "$VPY" -m mpi4py -m parallel_qftml sample "$WORK/$name-ref.toml" ) > "$WORK/$name-ref.log" 2>&1 9>&- &
    REF_PID=$!
    trap 'kill -TERM "$REF_PID" 2>/dev/null || true' EXIT   # this subshell's exit: stop the reference

    # it must be requeued (Restarts=1), run again and complete
    wait_job_end "$id" "$limit" 1 || { show_log "$log"; return 1; }
    say "$name: job $id $JOB_STATE, exit code $JOB_EXIT, restarts $JOB_RESTARTS"
    if [ "${JOB_RESTARTS:-0}" -lt 1 ]; then
        say "$name: job $id was not requeued (signal too late, or the run did not exit 3)"; show_log "$log"; return 1
    fi
    [ "$JOB_STATE" = COMPLETED ] && [ "$JOB_EXIT" = "0:0" ] || { show_log "$log"; return 1; }
    for pat in 'SIGUSR1: asking the run' 'run checkpointed \(exit 3\); requeueing' \
               '\(restart 1\).*: start on' '\(restart [1-9][0-9]*\).*: run finished'; do
        grep -Eq -- "$pat" "$log" || { say "$name: the job log has no line matching /$pat/"; show_log "$log"; return 1; }
    done
    if grep -E '^requeue-job .*: error' "$log"; then
        say "$name: the job script reported an error"; show_log "$log"; return 1
    fi
    n_ckpt=$(find "$WORK/ckpt-$name" -type f 2>/dev/null | wc -l)
    say "$name: the job log shows USR1 -> checkpoint, exit 3 -> requeue -> resume -> exit 0 ($n_ckpt checkpoint file(s) kept)"
    grep -E '^requeue-job .*(start on|SIGUSR1|requeueing|finished)|stopped by signal at|resuming from' "$log" \
        | sed 's/^/    /' || true
    check_h5 complete "$WORK/$name.h5"

    ref_rc=0
    wait "$REF_PID" || ref_rc=$?
    trap - EXIT
    say "$name: reference run (mpirun -n 2, uninterrupted) exit $ref_rc after $((SECONDS - t0)) s"
    [ "$ref_rc" = 0 ] || { show_log "$WORK/$name-ref.log"; return 1; }
    check_h5 complete "$WORK/$name-ref.h5"
    check_h5 same "$WORK/$name.h5" "$WORK/$name-ref.h5" configs
}

# SIGUSR1 sent by the harness mid-run (~10 s of sampling on 2 idle cores)
check_requeue() { requeue_case requeue 00:10:00 60 4000 yes 300; }

# wait_sampling NAME ID LOG: until the job's run is sampling (a progress line or a first checkpoint)
wait_sampling() {
    local name=$1 id=$2 log=$3 t0=$SECONDS
    until grep -q '^sampling \[' "$log" 2>/dev/null || [ -n "$(ls -A "$WORK/ckpt-$name" 2>/dev/null)" ]; do
        JOB_STATE=$(job_field "$id" JobState)
        if is_terminal "$JOB_STATE"; then
            say "$name: job $id ended ($JOB_STATE, exit $(job_field "$id" ExitCode)) before it was signalled"
            show_log "$log"; return 1
        fi
        [ $((SECONDS - t0)) -lt 120 ] || { say "$name: no progress line after 120 s"; show_log "$log"; return 1; }
        sleep 0.2
    done
}

# term_case NAME LAUNCHER: SIGTERM (`scancel JOBID`; also what the time limit sends when the USR1
# warning came too late): Slurm signals the batch shell and every task; the run checkpoints and exits
# 3. LAUNCHER=srun: srun passes the 3 on (measured); the template does not requeue a cancelled job and
# says how to continue; resubmitting the same script continues from the checkpoint, bit-identical to
# an uninterrupted run. LAUNCHER=mpirun (the template's srun line replaced by mpirun, as on a Slurm
# without PMIx): mpirun reports 1 on SIGTERM whatever the ranks return; the template must still report
# a stopped run ("stopped by SIGTERM", exit 3), not a failure (no resubmission in this case).
term_case() {
    local name=$1 launcher=$2 id id2 log log2 pat t0 ref_rc want
    # checkpoint.every = 0: checkpoints only on a stop signal and at the end (sweep 4020), so any other
    # checkpoint is the stop checkpoint (with periodic ones a stop that lands on a scheduled sweep
    # writes no extra file and cannot be told from a kill after that checkpoint)
    local extra="save_every = 1000

[checkpoint]
every = 0
keep = 2
dir = \"$WORK/ckpt-$name\""
    SHAPE="512, 512" N_SWEEPS=4000 MEASURE_EVERY=4 write_config "$WORK/$name.toml" "$WORK/$name.h5" "$extra"
    SHAPE="512, 512" N_SWEEPS=4000 MEASURE_EVERY=4 write_config "$WORK/$name-ref.toml" "$WORK/$name-ref.h5" \
        "${extra//ckpt-$name/ckpt-$name-ref}"
    render sample_requeue.sbatch "$JOBS/$name.sbatch" --set "CONFIG=$WORK/$name.toml" --set NTASKS_PER_NODE=2 \
        --set TIME=00:10:00 --set SIGNAL_SECONDS=60 --set "JOB_NAME=pqml-$name"
    want='run checkpointed \(exit 3\) after SIGTERM; not requeued' stopped='stopped by signal at sweep'
    if [ "$launcher" = mpirun ]; then
        # mpirun stops forwarding the ranks' output once it handles SIGTERM ("quiet" abort): the
        # run's last lines may be lost, its checkpoint is checked below instead
        stopped='SIGTERM: job cancelled or out of time'

        sed -i 's|^srun --mpi=pmix --cpus-per-task=1 --cpu-bind=cores \\$|mpirun --mca odls_base_sigkill_timeout 10 \\|' \
            "$JOBS/$name.sbatch"
        grep -q '^mpirun --mca odls_base_sigkill_timeout 10 ' "$JOBS/$name.sbatch" \
            || { say "$name: cannot swap srun for mpirun in the rendered template"; return 1; }
        want='run stopped by SIGTERM \(launcher exit 1\); not requeued'
    fi
    id=$(submit "$JOBS/$name.sbatch")
    log=$JOBS/pqml-$name-$id.out
    say "$name: submitted job $id ($launcher)"
    wait_sampling "$name" "$id" "$log"
    say "$name: job $id is sampling; scancel (SIGTERM to the batch shell and the tasks)"
    timeout 15 scancel "$id"
    wait_job_end "$id" 120 0 || { show_log "$log"; return 1; }
    say "$name: job $id $JOB_STATE, exit code $JOB_EXIT, restarts $JOB_RESTARTS"
    [ "${JOB_RESTARTS:-0}" = 0 ] || { say "$name: a cancelled job was requeued"; show_log "$log"; return 1; }
    [ "$JOB_EXIT" = "3:0" ] || { say "$name: job exit code $JOB_EXIT, want 3:0"; show_log "$log"; return 1; }
    for pat in 'SIGTERM: job cancelled or out of time' "$stopped" "$want"; do
        grep -Eq -- "$pat" "$log" || { say "$name: the job log has no line matching /$pat/"; show_log "$log"; return 1; }
    done
    # the stop checkpoint: any checkpoint before the end (n_therm + n_sweeps = 4020)
    [ -n "$(find "$WORK/ckpt-$name" -name 'ckpt-*.h5' ! -name 'ckpt-000000004020.h5' 2>/dev/null)" ] \
        || { say "$name: no checkpoint written on SIGTERM"; ls -l "$WORK/ckpt-$name"; return 1; }
    [ -z "$(find "$WORK/ckpt-$name" -name '*.tmp' 2>/dev/null)" ] || { say "$name: a .tmp is left"; return 1; }
    grep -E '^requeue-job |stopped by signal at' "$log" | sed 's/^/    /' || true
    [ "$launcher" = srun ] || return 0

    t0=$SECONDS
    ( cd "$WORK" && exec env "$MARK=$STATE" NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$WORK/numba-reference}" \
        timeout 400 mpirun --allow-run-as-root --oversubscribe -n 2 \
        "$VPY" -m mpi4py -m parallel_qftml sample "$WORK/$name-ref.toml" ) > "$WORK/$name-ref.log" 2>&1 9>&- &
    REF_PID=$!
    trap 'kill -TERM "$REF_PID" 2>/dev/null || true' EXIT
    id2=$(submit "$JOBS/$name.sbatch")
    log2=$JOBS/pqml-$name-$id2.out
    say "$name: resubmitted as job $id2"
    wait_job_end "$id2" 300 0 || { show_log "$log2"; return 1; }
    say "$name: job $id2 $JOB_STATE, exit code $JOB_EXIT"
    [ "$JOB_STATE" = COMPLETED ] && [ "$JOB_EXIT" = "0:0" ] || { show_log "$log2"; return 1; }
    grep -q 'resuming from' "$log2" || { say "$name: job $id2 did not resume"; show_log "$log2"; return 1; }
    ref_rc=0
    wait "$REF_PID" || ref_rc=$?
    trap - EXIT
    say "$name: reference run exit $ref_rc after $((SECONDS - t0)) s"
    [ "$ref_rc" = 0 ] || { show_log "$WORK/$name-ref.log"; return 1; }
    check_h5 complete "$WORK/$name.h5"
    check_h5 same "$WORK/$name.h5" "$WORK/$name-ref.h5" configs
}
check_term() { term_case term srun; }
check_term_mpirun() { term_case term-mpirun mpirun; }

# Optional (not in the default list; 5-10 min): the real `#SBATCH --signal=B:USR1@60` with a
# 3-minute limit; Slurm signals 60-120 s after the start, so the run must take longer than that.
check_timelimit() { requeue_case timelimit 00:03:00 60 60000 no 840; }

# --------------------------------------------------------------------------------------
# cleanup (EXIT trap): cancel jobs, stop daemons, logs on failure, summary line last
# --------------------------------------------------------------------------------------
cleanup() {
    local rc=$? ids i f
    set +e
    trap - EXIT
    trap '' INT TERM                     # finish the cleanup (timeout -k still KILLs)
    if [ "$rc" != 0 ] && [ "$FAILED" = 0 ]; then FAILED=1; fi   # setup failed, or interrupted
    if [ -n "$CHECK_PID" ]; then kill -TERM "$CHECK_PID" 2>/dev/null; fi   # a check still running
    if [ -n "$STATE" ] && [ -d "$STATE" ]; then
        if [ "$SETUP_DONE" = 1 ]; then
            ids=$(timeout 10 squeue -h -o %i 2>/dev/null)
            if [ -n "$ids" ]; then
                say "cancelling job(s) $(echo $ids)"
                timeout 10 scancel $ids
                for i in $(seq 1 90); do
                    [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
                    sleep 0.5
                done
            fi
        fi
        if [ "$FAILED" -gt 0 ] || [ "$rc" != 0 ]; then
            echo "===== logs of the failed run (state dir $STATE)"
            for f in "$STATE"/log/slurmctld.log "$STATE"/log/slurmd.log; do
                show_log "$f" 80
            done
            for f in "$STATE"/log/*.stdout; do if [ -s "$f" ]; then show_log "$f" 40; fi; done
            for f in "$STATE"/jobs/*.out; do if [ -f "$f" ]; then show_log "$f"; fi; done
        fi
        stop_run_processes "$STATE"
        if [ "$FAILED" = 0 ] && [ "$rc" = 0 ]; then
            rm -rf -- "$STATE/work" "$STATE/tmp"   # outputs, checkpoints, numba caches (~100 MB)
        fi
    fi
    say "total time $(elapsed)"
    echo "slurm: $PASSED passed, $FAILED failed"
    if [ "$FAILED" -gt 0 ] || [ "$rc" != 0 ]; then exit 1; fi
    exit 0
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

die() { say "error: $*" >&2; exit 1; }

# --------------------------------------------------------------------------------------
# 1. packages
# --------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (starts munged, slurmctld and slurmd as root)"
[ -x "$VPY" ] || die "no venv python at $VPY (run make setup)"
missing=""
command -v mpirun >/dev/null 2>&1 || die "no mpirun (run make setup)"
for c in slurmctld slurmd sbatch srun scontrol sinfo squeue scancel munged munge unmunge; do
    command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
if [ -n "$missing" ]; then
    say "missing:$missing; installing slurm-wlm munge with apt-get"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install Slurm and munge yourself"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 600 apt-get install -y slurm-wlm munge; then
        timeout 600 apt-get update || die "apt-get update failed"
        timeout 600 apt-get install -y slurm-wlm munge || die "apt-get install slurm-wlm munge failed"
    fi
    for c in slurmctld slurmd sbatch munged; do command -v "$c" >/dev/null 2>&1 || die "$c still missing"; done
fi
say "$(slurmctld -V), $(munged -V 2>&1 | head -n 1 | awk '{print $1}'), $(mpirun --version 2>&1 | head -n 1)"

# --------------------------------------------------------------------------------------
# 2. leftovers of earlier runs, fresh state directory
# --------------------------------------------------------------------------------------
mkdir -p "$BASE"
# one run at a time (a second run would take the first one's daemons for leftovers); the
# lock dies with this shell; long-lived children are started with the lock fd closed
exec 9> "$BASE/lock"
flock -n 9 || die "another tests/slurm/run.sh is running (it holds $BASE/lock)"
for old in "$BASE"/run.*; do
    if [ -d "$old" ]; then stop_run_processes "$old"; fi
done
# keep the newest 2 old state dirs for post-mortems
{ ls -1dt "$BASE"/run.* 2>/dev/null || true; } | tail -n +3 | while read -r old; do rm -rf -- "$old"; done
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
        die "TCP port $port is in use (another slurm?): set PQML_SLURM_CTLD_PORT / PQML_SLURM_SLURMD_PORT"
    fi
done
STATE=$(mktemp -d "$BASE/run.XXXXXX")
chmod 755 "$STATE"
mkdir -p "$STATE"/{munge,pids,log,ctld,slurmd,jobs,work,tmp}
JOBS=$STATE/jobs
WORK=$STATE/work
say "state dir $STATE"

# --------------------------------------------------------------------------------------
# 3. munged, slurmctld, slurmd
# --------------------------------------------------------------------------------------
KEY=/etc/munge/munge.key
if [ ! -s "$KEY" ]; then
    say "creating $KEY"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then mungekey --create --keyfile="$KEY" --force
    else dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none; fi
    chown munge:munge "$KEY" 2>/dev/null || true
    chmod 0400 "$KEY"
fi
SOCK=$STATE/munge/munge.socket
# The daemons run in their own sessions (setsid): a Ctrl-C must not kill them before the
# cleanup has cancelled the jobs. As root munged needs --force (the key is owned by munge).
setsid env "$MARK=$STATE" munged -F --force --socket="$SOCK" --key-file="$KEY" \
    --pid-file="$STATE/pids/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed" > "$STATE/log/munged.stdout" 2>&1 9>&- &
record_proc $! munged
for i in $(seq 1 50); do [ -S "$SOCK" ] && break; sleep 0.2; done
timeout 10 munge -n --socket="$SOCK" | timeout 10 unmunge --socket="$SOCK" > /dev/null \
    || die "munge does not work (munge -n | unmunge)"

HOST=$(hostname -s)
CPUS=$(nproc); [ "$CPUS" -ge 2 ] || CPUS=2
MEM_MB=1000
CONF=$STATE/slurm.conf
sed -e "s|@HOST@|$HOST|g" -e "s|@STATE@|$STATE|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" "$HERE/slurm.conf.in" > "$CONF"
: > "$STATE/plugstack.conf"
export SLURM_CONF=$CONF

setsid env "$MARK=$STATE" slurmctld -D -f "$CONF" > "$STATE/log/slurmctld.stdout" 2>&1 9>&- &
record_proc $! slurmctld
setsid env "$MARK=$STATE" slurmd -D -f "$CONF" > "$STATE/log/slurmd.stdout" 2>&1 9>&- &
record_proc $! slurmd

t0=$SECONDS
until [ "$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -n 1)" = idle ]; do
    for d in slurmctld slurmd munged; do
        kill -0 "$(awk -v d="$d" '$2 == d {print $1}' "$STATE/pids/procs")" 2>/dev/null || die "$d exited during start-up"
    done
    [ $((SECONDS - t0)) -lt 60 ] || die "node not idle after 60 s: $(timeout 5 sinfo -N 2>&1 | tail -n 1)"
    sleep 0.5
done
SETUP_DONE=1
say "node $HOST idle after $((SECONDS - t0)) s ($CPUS CPUs, partition debug); setup took $(elapsed)"

# --------------------------------------------------------------------------------------
# 4. checks
# --------------------------------------------------------------------------------------
# Exported into the jobs (sbatch --export=ALL is the default): Open MPI as root, no CMA in
# containers, more ranks than cores allowed; node-local scratch inside the state dir.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export SLURM_TMPDIR=$STATE/tmp

for name in $CHECKS; do
    declare -F "check_$name" > /dev/null || die "unknown check '$name'"
    t0=$SECONDS
    say "--- $name"
    # In a subshell, so that set -e works inside the check (not in an `if`); in the background
    # and waited for, so that a signal to this shell runs its trap (cleanup) at once; without
    # the lock fd, and recorded, so that a later run can stop it if this shell is killed.
    ( set -e; trap 'exit 143' TERM; record_proc "$BASHPID" bash; "check_$name" ) 9>&- &
    CHECK_PID=$!
    rc=0
    wait "$CHECK_PID" || rc=$?
    CHECK_PID=""
    if [ "$rc" = 0 ]; then
        PASSED=$((PASSED + 1)); say "PASS $name ($((SECONDS - t0)) s)"
    else
        FAILED=$((FAILED + 1)); say "FAIL $name ($((SECONDS - t0)) s)"
    fi
done
