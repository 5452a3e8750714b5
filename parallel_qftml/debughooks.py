"""Test-only fault hooks, all behind ONE switch: ``PQML_DEBUG_HOOKS=1`` (docs/config.md, "Environment
variables"). Without it every hook variable below is ignored, so a user's run never honours them.

* ``PQML_TEST_RAISE_ON_RANK=r``: ``raise_on_rank`` raises RuntimeError on world rank r (job abort tests).
* ``PQML_TEST_PAUSE_AT=checkpoint|config`` (+ ``PQML_TEST_PAUSE_SECONDS``, default 30): ``pause`` prints
  ``PQML_TEST_PAUSE <point>`` to stderr and sleeps there, so that a test can kill the job at that moment.
* ``PQML_TEST_WRITE_ERROR=checkpoint|config|observables`` (+ ``PQML_TEST_WRITE_ERROR_RANK``, default
  every rank): ``write_error`` raises ``OSError(ENOSPC)`` at that write, as a full disk does.

No MPI, no I/O beyond the stderr line; the hooks are cheap no-ops when the switch is off.
"""
from __future__ import annotations

import os

SWITCH = "PQML_DEBUG_HOOKS"
RAISE_ENV = "PQML_TEST_RAISE_ON_RANK"
PAUSE_ENV = "PQML_TEST_PAUSE_AT"
PAUSE_SECONDS_ENV = "PQML_TEST_PAUSE_SECONDS"
WRITE_ERROR_ENV = "PQML_TEST_WRITE_ERROR"
WRITE_ERROR_RANK_ENV = "PQML_TEST_WRITE_ERROR_RANK"


def enabled() -> bool:
    return os.environ.get(SWITCH, "") == "1"


def _get(name: str) -> str:
    return os.environ.get(name, "") if enabled() else ""


def raise_on_rank(rank: int) -> None:
    """RuntimeError on the world rank named by PQML_TEST_RAISE_ON_RANK."""
    if _get(RAISE_ENV) == str(rank):
        raise RuntimeError(f"{RAISE_ENV}={rank}: test exception on rank {rank}")


def pause(point: str) -> None:
    """Sleep at a named point of a write (PQML_TEST_PAUSE_AT=point)."""
    if _get(PAUSE_ENV) == point:
        import sys
        import time
        print(f"PQML_TEST_PAUSE {point}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "30")))


def write_error(point: str, rank: int) -> None:
    """OSError(ENOSPC) at a named write (PQML_TEST_WRITE_ERROR=point) on PQML_TEST_WRITE_ERROR_RANK (or all)."""
    if _get(WRITE_ERROR_ENV) == point and os.environ.get(WRITE_ERROR_RANK_ENV, str(rank)) == str(rank):
        import errno
        raise OSError(errno.ENOSPC, f"{WRITE_ERROR_ENV}={point}: injected write error (No space left on device)")
