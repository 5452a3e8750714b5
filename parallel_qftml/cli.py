"""Command line: ``pqml info`` | ``pqml sample CONFIG [--set section.key=value ...] [--resume [--force]]``
| ``pqml learn CONFIG [...same options]`` | ``pqml rbm CONFIG [...]`` | ``pqml inspect FILE.h5``.

Recommended launch under MPI: ``mpirun -n N python -m mpi4py -m parallel_qftml sample CONFIG``.
A ``UserError`` prints ``pqml: error: <message>`` once (rank 0) and exits 2 on every rank. A failed write
during a run (``WriteError``: disk full) and a ``MemoryError`` may happen on one rank only: that rank prints
the one line and ends the job at once (exit 4 and 2; ``MPI_Abort`` on a multi-rank job, whose other ranks
may wait in a collective). Any other exception on a multi-rank job prints the traceback with the rank and
calls ``MPI_Abort`` so the job never hangs. A closed stdout (``pqml inspect FILE | head``) ends quietly
with exit 141 (128 + SIGPIPE, as for coreutils). Exit codes: docs/config.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from . import __version__
from .errors import EXIT_USER_ERROR, UserError, WriteError

PROG = "pqml"
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE: what a shell reports for `cat FILE | head`


def _run_command(sub, name: str, help: str) -> None:
    """A sub-command that runs a job: CONFIG, --set (repeatable), --resume, --force."""
    s = sub.add_parser(name, help=help)
    s.add_argument("config", metavar="CONFIG", help="TOML config file")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (TOML syntax, e.g. --set output.overwrite=true); repeatable")
    s.add_argument("--resume", action="store_true",
                   help="continue from the newest valid checkpoint (start afresh if there is none)")
    s.add_argument("--force", action="store_true",
                   help="with --resume: accept a checkpoint whose physics config differs")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Parallel Metropolis sampling of phi^4 lattice fields.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("info", help="versions of Python, MPI, mpi4py, numba, h5py; thread settings")
    _run_command(sub, "sample", "run a sampling job described by a TOML config (docs/config.md)")
    _run_command(sub, "learn", "learn the couplings of the MRF from a target action or from data (docs/learning.md)")
    _run_command(sub, "rbm", "train a scalar-field RBM or a phi^4 network on a target or on data (docs/rbm.md)")
    sub.add_parser("inspect", help="print an output or checkpoint file's metadata and datasets").add_argument(
        "file", metavar="FILE.h5")
    return p


def info_lines(comm) -> list[str]:
    """The report of ``pqml info``."""
    import h5py
    import mpi4py
    import numba
    import numpy
    from mpi4py import MPI

    from .io.h5file import describe_backend

    vendor, ver = MPI.get_vendor()
    lib = MPI.Get_library_version().strip().splitlines()[0].strip()
    h5mpi = h5py.get_config().mpi
    env = lambda k: os.environ.get(k, "(unset)")  # noqa: E731
    return [
        f"parallel_qftml  {__version__}",
        f"python          {sys.version.split()[0]} ({sys.executable})",
        f"MPI             {vendor} {'.'.join(map(str, ver))}; MPI standard {'.'.join(map(str, MPI.Get_version()))}",
        f"MPI library     {lib}",
        f"MPI world size  {comm.Get_size()} rank(s)",
        f"mpi4py          {mpi4py.__version__}",
        f"numpy           {numpy.__version__}",
        f"numba           {numba.__version__}",
        f"h5py            {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), mpi={h5mpi}",
        f"HDF5 back-end   {describe_backend()}",
        f"threads         OMP_NUM_THREADS={env('OMP_NUM_THREADS')} NUMBA_NUM_THREADS={env('NUMBA_NUM_THREADS')} "
        f"numba.config.NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}",
        f"numba cache     NUMBA_CACHE_DIR={env('NUMBA_CACHE_DIR')}",
    ]


def _info(args, comm) -> int:
    lines = info_lines(comm)
    if comm.Get_rank() == 0:
        print("\n".join(lines))
    return 0


def _sample(args, comm) -> int:
    from .config import load_config
    from .run import run_sample

    return run_sample(load_config(args.config, args.overrides), comm, resume=args.resume, force=args.force)


def _learn(args, comm) -> int:
    from .learn import run_learn
    from .learning.config import load_learn_config

    return run_learn(load_learn_config(args.config, args.overrides), comm, resume=args.resume, force=args.force)


def _rbm(args, comm) -> int:
    from .rbm.config import load_rbm_config
    from .rbm.driver import run_rbm

    return run_rbm(load_rbm_config(args.config, args.overrides), comm, resume=args.resume, force=args.force)


def _inspect(args, comm) -> int:
    from .io.inspect import inspect_lines
    if comm.Get_rank() == 0:
        print("\n".join(inspect_lines(args.file)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 user error, 3 stopped by a signal after a checkpoint,
    4 learning diverged)."""
    args = build_parser().parse_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        return {"info": _info, "sample": _sample, "learn": _learn, "rbm": _rbm, "inspect": _inspect}[args.command](args, comm)
    except BrokenPipeError:
        return _broken_pipe()
    except WriteError as e:
        _end_now(comm, e.exit_code, f"{e}; last good checkpoint: {_last_checkpoint(args) or 'none'}; "
                                    f"free space, then continue with --resume")
    except MemoryError as e:
        _end_now(comm, EXIT_USER_ERROR, f"out of memory on rank {comm.Get_rank()} of {comm.Get_size()}"
                                        f"{f' ({e})' if str(e) else ''}: use more nodes (fewer ranks per node) "
                                        f"or a smaller lattice")
    except UserError as e:
        if comm.Get_rank() == 0:
            msg = " ".join(str(e).split("\n"))
            print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
        return e.exit_code
    except Exception:
        if comm.Get_size() > 1:
            rank, size = comm.Get_rank(), comm.Get_size()
            tb = "".join(traceback.format_exc()).rstrip().splitlines()
            sys.stderr.write("".join(f"[rank {rank}/{size}] {line}\n" for line in tb))
            sys.stderr.write(f"[rank {rank}/{size}] aborting the MPI job\n")
            sys.stderr.flush()
            comm.Abort(1)
        raise


def _broken_pipe() -> int:
    """stdout was closed by its reader: point it at /dev/null (so that the interpreter's final flush
    raises nothing) and exit quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _last_checkpoint(args) -> str | None:
    """The newest complete checkpoint of the run's checkpoint directory (None if none or unknown)."""
    try:
        from .io.checkpoint import list_checkpoints
        if args.command == "sample":
            from .config import load_config as load
        elif args.command == "learn":
            from .learning.config import load_learn_config as load
        elif args.command == "rbm":
            from .rbm.config import load_rbm_config as load
        else:
            return None
        found = list_checkpoints(load(args.config, args.overrides).checkpoint_dir)
        return found[0] if found else None
    except Exception:
        return None


def _end_now(comm, code: int, msg: str):
    """Print `pqml: error: msg` (this rank) and end the job with `code` without any further collective
    call or write (the output file stays as of its last flush, i.e. the last checkpoint, as after a kill):
    MPI_Abort on a multi-rank job (other ranks may be inside a collective), else os._exit."""
    msg = " ".join(msg.split("\n"))
    try:
        sys.stdout.flush()
    except Exception:
        pass
    sys.stderr.write(f"{PROG}: error: {msg}\n")
    sys.stderr.flush()
    if comm.Get_size() > 1:
        comm.Abort(code)
    os._exit(code)
