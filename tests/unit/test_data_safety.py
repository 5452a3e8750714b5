"""Data safety of the three job drivers (issue 11): a running job owns its output and checkpoint
directory (lock file), only a run's own checkpoints are ever deleted, `--resume --force` never keeps a
changed action silently, `--resume` never discards measurements silently, useless runs are refused or
warned about, and the small lifecycle defects (acceptance = nan on a no-op resume, control characters
in output.path, ETA after a resume, warnings repeated by every rank). CLI in subprocesses, tiny runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import env, kill_run, pqml_cmd, start, wait_for  # noqa: E402

SAMPLE = """\
[lattice]
shape = [4, 4]
[action]
kind = "mrf"
a = 1.52425
b = 0.175
[sampler]
seed = 7
n_therm = 10
n_sweeps = {n_sweeps}
measure_every = 2
{sampler_extra}
[output]
path = "{path}"
progress = false
save_every = {save_every}
{output_extra}
[checkpoint]
every = 20
{ckpt_extra}
"""

LEARN = """\
[lattice]
shape = [4, 4]
[learn]
mode = "target"
epochs = 4
n_chains = 1
samples_per_epoch = 2
params = ["a"]
[target]
g = {{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175 }}
[optimizer]
kind = "sgd"
lr = 0.01
[sampler]
seed = 3
n_therm = 5
[output]
path = "{path}"
progress = false
"""

RBM = """\
[rbm]
n_hidden = 4
mu2 = 9.0
[target]
kind = "free_field"
shape = [4]
m2 = 4.0
[train]
epochs = 4
n_chains = 4
k = 1
[optimizer]
kind = "sgd"
lr = 0.01
[sampler]
seed = 5
[output]
path = "{path}"
progress = false
"""


def sample_cfg(tmp_path, name, n_sweeps=40, save_every=0, sampler_extra="", output_extra="", ckpt_extra=""):
    p = tmp_path / f"{name}.toml"
    p.write_text(SAMPLE.format(path=tmp_path / f"{name}.h5", n_sweeps=n_sweeps, save_every=save_every,
                               sampler_extra=sampler_extra, output_extra=output_extra, ckpt_extra=ckpt_extra))
    return p


def pqml(n, *args, timeout=120):
    return subprocess.run(pqml_cmd(n, *args), capture_output=True, text=True, env=env(), timeout=timeout)


def one_line_error(r, *words):
    """Exit 2 with one `pqml: error:` line (the only stderr line on one rank; mpirun adds its own notice)."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    if r.args[0] != "mpirun":
        assert len(lines) == 1, r.stderr
    lines = [x for x in lines if x.startswith("pqml: error: ")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def listing(d: Path) -> dict:
    """Every file below d -> (size, mtime_ns)."""
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))
            if p.is_file()}


# ---- item 1: a running job owns its output and checkpoint directory ---------------------------------

def test_second_job_on_a_running_jobs_paths_is_refused_and_a_killed_jobs_lock_does_not_block_resume(tmp_path):
    a = sample_cfg(tmp_path, "same", n_sweeps=200, save_every=2)
    p = start(1, "sample", a, PQML_DEBUG_HOOKS="1", PQML_TEST_PAUSE_AT="config", PQML_TEST_PAUSE_SECONDS="60")
    try:
        wait_for(p, "PQML_TEST_PAUSE config")           # A is sampling, its output exists
        out = tmp_path / "same.h5"
        before = out.stat()
        assert (tmp_path / "same.h5.lock").exists()
        # B: same output path, with and without overwrite
        for extra in ("--set", "output.overwrite=true"), ("--set", "output.overwrite=false"):
            r = pqml(1, "sample", a, *extra)
            one_line_error(r, "in use", "same.h5.lock", f"pid {p.pid}")
        # C: another output, but A's checkpoint directory
        c = sample_cfg(tmp_path, "other", ckpt_extra=f'dir = "{tmp_path / "same.h5.ckpt"}"')
        one_line_error(pqml(1, "sample", c), "in use")
        assert not (tmp_path / "other.h5").exists() and not (tmp_path / "other.h5.lock").exists()
        after = out.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns,
                                                                    before.st_size)
    finally:
        kill_run(p, a)
    assert (tmp_path / "same.h5.lock").exists()        # left by the SIGKILLed job: stale
    r = pqml(1, "sample", a, "--resume")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "same.h5.lock").exists() and not (tmp_path / "same.h5.ckpt.lock").exists()
    with h5py.File(tmp_path / "same.h5") as f:
        assert f.attrs["complete"] and f["observables/sweep"][-1] == 210


def test_two_jobs_started_at_once_on_one_output_one_runs_one_is_refused(tmp_path):
    a = sample_cfg(tmp_path, "same", n_sweeps=20, save_every=20, output_extra="overwrite = true")  # 1 pause
    ps = [start(1, "sample", a, PQML_DEBUG_HOOKS="1", PQML_TEST_PAUSE_AT="config", PQML_TEST_PAUSE_SECONDS="4")
          for _ in range(2)]
    res = sorted((p.wait(timeout=120), p.stderr.read()) for p in ps)
    assert [c for c, _ in res] == [0, 2], res
    assert [x for x in res[1][1].splitlines() if x.startswith("pqml: error:")][0].count("in use") == 1
    assert "Traceback" not in res[0][1] + res[1][1]
    with h5py.File(tmp_path / "same.h5") as f:
        assert f.attrs["complete"] and f["observables/sweep"][-1] == 30
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob("*.part"))


HOLD = """
import sys, time
from parallel_qftml.io.lock import PathLock
lock = PathLock(sys.argv[1], "test holder")
msg = lock.acquire()
print("HELD" if msg is None else msg, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("command, n", [("sample", 2), ("learn", 1), ("rbm", 1)])
def test_every_driver_refuses_a_locked_output_and_writes_nothing(tmp_path, command, n):
    text = {"sample": SAMPLE.format(path=tmp_path / "x.h5", n_sweeps=10, save_every=0, sampler_extra="",
                                    output_extra="overwrite = true", ckpt_extra=""),
            "learn": LEARN.format(path=tmp_path / "x.h5"), "rbm": RBM.format(path=tmp_path / "x.h5")}[command]
    cfg = tmp_path / "x.toml"
    cfg.write_text(text)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "x.h5.lock")], stdout=subprocess.PIPE,
                              text=True, env=env(), start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        before = listing(tmp_path)
        one_line_error(pqml(n, command, cfg), "in use", f"pid {holder.pid}")      # on every rank
        assert listing(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    r = pqml(1, command, cfg)               # the holder is gone: its lock is stale
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == []


def test_lock_file_names_its_holder_and_is_removed_on_release(tmp_path):
    from parallel_qftml.io.lock import PathLock
    path = tmp_path / "sub" / "out.h5.lock"            # missing parent: created, removed again
    mine = PathLock(str(path), "run 1")
    assert mine.acquire() is None and path.exists()
    assert "run 1" in path.read_text() and str(os.getpid()) in path.read_text()
    mine.release()
    assert not path.exists() and not path.parent.exists()
    mine.release()                                       # idempotent


# ---- item 2: a shared checkpoint.dir -----------------------------------------------------------------

def test_a_fresh_run_never_deletes_files_that_are_not_its_predecessors_checkpoints(tmp_path):
    d = tmp_path / "ckpts"
    x = sample_cfg(tmp_path, "x", ckpt_extra=f'dir = "{d}"', output_extra="overwrite = true")
    y = sample_cfg(tmp_path, "y", ckpt_extra=f'dir = "{d}"', output_extra="overwrite = true")
    assert pqml(1, "sample", x).returncode == 0
    xs = sorted(p.name for p in d.glob("ckpt-*.h5"))
    assert xs
    (d / "ckpt-000000000999.h5").write_text("not a checkpoint")
    (d / "ckpt-000000000005.h5.tmp").write_text("a temporary of somebody")
    before = listing(d)
    one_line_error(pqml(1, "sample", y), str(d), "ckpt-000000000999.h5")   # y's run: x's files stay
    assert listing(d) == before and not (tmp_path / "y.h5").exists()
    one_line_error(pqml(1, "sample", x), "ckpt-000000000999.h5")  # x again: the strays are not x's
    assert listing(d) == before
    (d / "ckpt-000000000999.h5").unlink()
    (d / "ckpt-000000000005.h5.tmp").unlink()
    with h5py.File(tmp_path / "x.h5") as f:
        old_id = f.attrs["run_id"]
    r = pqml(1, "sample", x)                      # x replaced by a new x: its old checkpoints go
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "x.h5") as f:
        new_id = f.attrs["run_id"]
    assert new_id != old_id
    for p in d.glob("ckpt-*.h5"):
        with h5py.File(p) as f:
            assert f.attrs["run_id"] == new_id


def test_resume_ignores_checkpoints_of_another_run(tmp_path):
    d = tmp_path / "ckpts"
    x = sample_cfg(tmp_path, "x", ckpt_extra=f'dir = "{d}"')
    assert pqml(1, "sample", x).returncode == 0
    foreign = sorted(d.glob("ckpt-*.h5"))[-1]
    with h5py.File(foreign, "r+") as f:
        f.attrs["run_id"] = "another-run"
    r = pqml(1, "sample", x, "--resume")
    assert r.returncode == 0, r.stderr          # the older checkpoint, x's own, is used
    assert "another run" in r.stderr and "resuming from" in r.stderr


# ---- item 3: --resume --force with changed physics ---------------------------------------------------

def test_force_with_a_changed_action_is_refused_and_other_changes_are_recorded(tmp_path):
    x = sample_cfg(tmp_path, "x", n_sweeps=40)
    assert pqml(1, "sample", x, "--set", "sampler.n_sweeps=20").returncode == 0
    before = listing(tmp_path)
    one_line_error(pqml(1, "sample", x, "--resume", "--force", "--set", "action.a=1.6"), "[action]")
    assert listing(tmp_path) == before
    one_line_error(pqml(1, "sample", x, "--resume", "--force", "--set", "sampler.tune=false", "--set",
                        "sampler.delta=0.3"), "sampler.delta")       # the checkpoint's step size would stay
    assert listing(tmp_path) == before
    r = pqml(1, "sample", x, "--resume", "--force", "--set", "sampler.n_hits=3")
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "x.h5") as f:
        rec = [json.loads(x) for x in str(f.attrs["forced_resumes"]).splitlines()]
        assert f.attrs["complete"] and f["observables/sweep"][-1] == 50
    assert len(rec) == 1 and rec[0]["at"] == "sweep 30" and rec[0]["overrides"] == ["sampler.n_hits=3"], rec


# ---- item 4: --resume without the checkpoints over measurements ---------------------------------------

@pytest.mark.parametrize("how", ["dir gone", "dir wrong"])
def test_resume_without_checkpoints_over_measurements_is_refused(tmp_path, how):
    import shutil
    x = sample_cfg(tmp_path, "x")
    assert pqml(1, "sample", x).returncode == 0
    with h5py.File(tmp_path / "x.h5", "r+") as f:
        f.attrs["complete"] = False              # as after a kill following a checkpoint
    args = ()
    if how == "dir gone":
        shutil.rmtree(tmp_path / "x.h5.ckpt")
    else:
        args = ("--set", f"checkpoint.dir='{tmp_path / 'elsewhere'}'")
    before = listing(tmp_path)
    one_line_error(pqml(1, "sample", x, "--resume", *args), "20 measurements", "no checkpoint")
    assert listing(tmp_path) == before


def test_resume_after_a_kill_inside_the_first_checkpoint_starts_afresh(tmp_path):
    """Measurements flushed for a first checkpoint that never completed (its run's .tmp is there) are
    recomputed: the restarted run equals the uninterrupted one."""
    import shutil
    x = sample_cfg(tmp_path, "x")
    assert pqml(1, "sample", x).returncode == 0
    with h5py.File(tmp_path / "x.h5", "r+") as f:
        ref = f["observables/action"][()]
        f.attrs["complete"] = False
        run_id = f.attrs["run_id"]
    shutil.rmtree(tmp_path / "x.h5.ckpt")
    (tmp_path / "x.h5.ckpt").mkdir()
    (tmp_path / "x.h5.ckpt" / f"ckpt-000000000030.h5.{run_id}.tmp").write_text("half written")
    r = pqml(1, "sample", x, "--resume")
    assert r.returncode == 0 and "killed while writing its first checkpoint" in r.stderr, r.stderr
    with h5py.File(tmp_path / "x.h5") as f:
        assert f.attrs["complete"] and (f["observables/action"][()] == ref).all()
    assert not list((tmp_path / "x.h5.ckpt").glob("*.tmp"))


# ---- item 8: runs that do nothing useful --------------------------------------------------------------

def test_measure_every_beyond_n_sweeps_is_a_config_error():
    from parallel_qftml.config import parse_config
    from parallel_qftml.errors import ConfigError
    text = SAMPLE.format(path="x.h5", n_sweeps=5, save_every=0, sampler_extra="", output_extra="", ckpt_extra="")
    text = text.replace("measure_every = 2", "measure_every = 6").replace("every = 20", "every = 0")
    with pytest.raises(ConfigError, match="sampler.measure_every"):
        parse_config(text)


def test_an_acceptance_below_one_percent_after_tuning_is_warned_about(tmp_path):
    x = sample_cfg(tmp_path, "x", n_sweeps=10, sampler_extra="delta = 1e300")
    r = pqml(1, "sample", x)
    assert r.returncode == 0, r.stderr
    assert "acceptance" in r.stderr and "below 1 %" in r.stderr, r.stderr
    ok = sample_cfg(tmp_path, "ok", n_sweeps=10)
    r = pqml(1, "sample", ok)
    assert r.returncode == 0 and "below 1 %" not in r.stderr, r.stderr


# ---- item 10 (part) -----------------------------------------------------------------------------------

def test_resume_of_a_finished_run_prints_the_files_acceptance(tmp_path):
    x = sample_cfg(tmp_path, "x")
    r1 = pqml(1, "sample", x)
    r2 = pqml(1, "sample", x, "--resume")
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr
    assert "nan" not in r2.stdout and "acceptance = " in r2.stdout, r2.stdout
    assert r1.stdout.splitlines()[-1] == r2.stdout.splitlines()[-1]


@pytest.mark.parametrize("bad", ["out\n.h5", "out\t.h5", "out\x1b.h5", "out\x7f.h5"])
def test_control_characters_in_output_path_are_refused(bad):
    from parallel_qftml.config import from_dict
    from parallel_qftml.errors import ConfigError
    d = {"lattice": {"shape": [4, 4]}, "action": {"kind": "mrf", "a": 1.0, "b": 0.1},
         "sampler": {"seed": 1, "n_sweeps": 2}, "output": {"path": bad}}
    with pytest.raises(ConfigError, match="output.path"):
        from_dict(d)


def test_progress_eta_after_a_resume_is_measured_from_this_processes_work(monkeypatch):
    import io
    from parallel_qftml import log
    now = [1000.0]
    monkeypatch.setattr(log.time, "monotonic", lambda: now[0])
    s = io.StringIO()
    p = log.Progress(200, stream=s, start=40)
    now[0] += 10.0                                # 10 s for 20 of the 160 remaining steps
    p.update(20)
    line = s.getvalue().splitlines()[-1]
    assert "60/200" in line and "eta   70.0s" in line, line


def test_a_warning_every_rank_emits_is_printed_once(tmp_path):
    x = sample_cfg(tmp_path, "x")
    assert pqml(1, "sample", x).returncode == 0
    newest = sorted((tmp_path / "x.h5.ckpt").glob("ckpt-*.h5"))[-1]
    newest.write_bytes(newest.read_bytes()[:200])      # truncated
    r = pqml(2, "sample", x, "--resume")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("is not usable") == 1, r.stderr
