"""The life cycle of a job, shared by `pqml sample`, `pqml learn` and `pqml rbm` (docs/config.md,
"Output ownership, checkpoints and --resume"): ownership of the output and checkpoint directory
(lock files), output checks, what a fresh start may delete, what `--resume` may and may not do.

Every function is called by every rank of `comm`; file-system decisions are taken on world rank 0
and broadcast, so all ranks raise the same one-line error (exit 2) or go on together.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError, UserError
from .parallel.reductions import bcast


def plot_path(cfg) -> Path:
    """The PNG written next to the .h5 when ``output.plot`` is true."""
    return Path(cfg.output.path).with_suffix(".png")


def _refuse_if(check, comm) -> None:
    """Run `check()` (returns an error message or None) on world rank 0 only, and raise the same
    OutputError on every rank if it found a problem (file-system checks must not diverge)."""
    msg = None
    if comm.Get_rank() == 0:
        try:
            msg = check()
        except OutputError as e:
            msg = str(e)
    msg = bcast(msg, comm)
    if msg:
        raise OutputError(msg)


def lock_path(path: str) -> str:
    """`<path>.lock` beside `path` (a file or a directory), with the parent's symbolic links resolved,
    so that two spellings of one path give one lock."""
    p = os.path.abspath(path.rstrip("/") or "/")
    return os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p) + ".lock")


@contextmanager
def owned_paths(cfg, comm):
    """Hold `<output.path>.lock` and `<checkpoint.dir>.lock` (io/lock.py) for the body: a second job
    on either path is refused with one line (exit 2) before it touches anything, with or without
    output.overwrite; a lock whose job is gone (killed, crashed) is taken over. Released on every exit
    of the body (0, 2, 3, 4 and exceptions)."""
    from .io.lock import PathLock
    locks, msg = [], None
    if comm.Get_rank() == 0:
        for key, path in (("output.path", cfg.output.path), ("checkpoint.dir", cfg.checkpoint_dir)):
            lock = PathLock(lock_path(path), f"job writing {os.path.abspath(cfg.output.path)}")
            try:
                why = lock.acquire()
            except OSError as e:              # e.g. an unwritable directory: say so as check_outputs does
                from .io.output import check_output_path
                msg = f"{key} {path!r}: cannot create its lock file {lock.path!r} ({e.strerror or e})"
                if key == "output.path":
                    try:
                        check_output_path(path, True)
                    except OutputError as oe:
                        msg = str(oe)
                break
            if why:
                msg = f"{key} {path!r} is {why}"
                break
            locks.append(lock)
        if msg:
            for lock in locks:
                lock.release()
    msg = bcast(msg, comm)
    if msg:
        raise OutputError(msg)
    try:
        yield
    finally:
        for lock in reversed(locks):
            lock.release()


def check_outputs(cfg, comm) -> None:
    """The output path(s) can be written (nothing is created)."""
    from .io.output import check_output_path

    def check():
        check_output_path(cfg.output.path, cfg.output.overwrite)
        if cfg.output.plot:
            check_output_path(plot_path(cfg), cfg.output.overwrite)
    _refuse_if(check, comm)


def output_run_id(cfg, comm) -> str | None:
    """The run_id of the existing output file (None if there is none or it is unreadable): `--resume`
    uses only checkpoints carrying it."""
    from .io.checkpoint import read_run_file
    info = None
    if comm.Get_rank() == 0 and os.path.exists(cfg.output.path):
        try:
            info = read_run_file(cfg.output.path)
        except OSError:
            pass
    return bcast(info["run_id"] if info else None, comm)


def clear_checkpoints(cfg, comm, allowed: bool) -> None:
    """A fresh start must not leave an earlier run's checkpoints beside its own (a later --resume would
    pick them up). Only checkpoints (and temporaries) carrying the run_id of the output file being
    replaced are deleted, and only if `allowed` (output.overwrite, or --resume without a checkpoint);
    anything else named like a checkpoint (another run's, a stray file) makes the run refuse, and
    nothing is deleted."""
    from .io.checkpoint import checkpoint_files, checkpoint_owner, read_run_file

    def check():
        d = cfg.checkpoint_dir
        found = checkpoint_files(d)
        if not found:
            return None
        if not allowed:
            return (f"{d!r} holds checkpoints of an earlier run: resume it with --resume, set "
                    f"output.overwrite = true, or delete them")
        old = None
        if os.path.exists(cfg.output.path):
            try:
                old = read_run_file(cfg.output.path)["run_id"]
            except OSError:
                pass
        others = [p for p in found if not old or checkpoint_owner(p) != old]
        if others:
            names = ", ".join(os.path.basename(p) for p in others[:5]) + (
                f" and {len(others) - 5} more" if len(others) > 5 else "")
            return (f"checkpoint.dir {d!r} holds files named like checkpoints that are not the "
                    f"checkpoints of {cfg.output.path!r} ({names}); they are left alone: delete them or "
                    f"choose another checkpoint.dir")
        for p in found:
            os.remove(p)
    _refuse_if(check, comm)


def restart_check(cfg, comm, log=None) -> None:
    """--resume without a checkpoint of the output: start afresh only if nothing is lost, i.e. there is
    no output file, or it is an incomplete file of the same physics that has no measurement, or whose
    measurements were flushed for a first checkpoint that was never completed (a temporary of its run is
    in checkpoint.dir: the run was killed while writing it; the deterministic chain recomputes them).
    Refuse otherwise (exit 2): the checkpoint directory gone, checkpoint.dir pointing elsewhere, ..."""
    from .io.checkpoint import own_temporaries, read_run_file
    note = []

    def check():
        path, d = cfg.output.path, cfg.checkpoint_dir
        if not Path(path).exists():
            return None
        try:
            info = read_run_file(path)
        except OSError as e:
            return f"cannot resume: {path!r} is not readable ({e})"
        if info["complete"] or info["physics_sha256"] != cfg.physics_sha256:
            return (f"cannot resume: {path!r} exists but {d!r} has no checkpoint of it "
                    f"(and the file is complete or of another config)")
        if info["n_rows"] and not (info["run_id"] and own_temporaries(d, info["run_id"])):
            return (f"cannot resume: {path!r} holds {info['n_rows']} measurements but {d!r} has no checkpoint "
                    f"of it; point checkpoint.dir at its checkpoints, or start afresh with "
                    f"output.overwrite = true (which discards them)")
        if info["n_rows"]:
            note.append(f"{path!r}: the run was killed while writing its first checkpoint; starting afresh")
        return None
    _refuse_if(check, comm)
    if note and log is not None:
        log.warning(note[0])


def check_resume(cfg, comm, path: str, physics_sha256: str, force: bool, at: str, what: str,
                 kept: str | None = None, log=None) -> None:
    """A checkpoint `path` (at `at`, e.g. "sweep 1200") of different physics: without --force refuse
    (`what` names the settings the hash covers). With --force refuse if `kept` (what the checkpoint
    holds that the config changes, which a resumed run would silently keep), else accept and append one
    JSON line {at, physics_sha256_before/after, config_sha256, overrides, config_text} to the output
    file's root attribute `forced_resumes` (the changes apply from the checkpoint on)."""
    if physics_sha256 == cfg.physics_sha256:
        return
    if not force:
        raise UserError(f"cannot resume from {path}: the config's {what} differ from the checkpointed run "
                        f"(use --force to resume anyway)")
    if kept:
        raise UserError(f"cannot resume from {path} with --force: {kept}; start a new run (another "
                        f"output.path, or output.overwrite = true) for that")
    from .io.checkpoint import append_root_line
    line = json.dumps({"at": at, "physics_sha256_before": physics_sha256,
                       "physics_sha256_after": cfg.physics_sha256, "config_sha256": cfg.sha256,
                       "overrides": list(cfg.overrides), "config_text": cfg.text})

    def check():
        try:
            append_root_line(cfg.output.path, "forced_resumes", line)
        except OSError as e:
            return f"cannot record the forced resume in {cfg.output.path!r}: {e}"
    _refuse_if(check, comm)
    if log is not None:
        log.warning(f"--force: resuming {path} with changed settings from {at} on (recorded in the root "
                    f"attribute forced_resumes of {cfg.output.path})")
