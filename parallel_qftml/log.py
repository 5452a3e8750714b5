"""Rank-aware logging and a rank-0 progress bar (both to stderr).

Rank 0 logs at INFO and WARNING; ranks > 0 log only errors, prefixed ``[rank r/size]``: every warning of
the package is a collective decision that all ranks reach together (a checkpoint skipped, a stop
signal), so rank 0 prints it once. A problem of one rank alone is an exception (cli.py prints it with
the rank), not a warning.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

LOGGER_NAME = "parallel_qftml"


def get_logger(comm=None) -> logging.Logger:
    """The package logger configured for this rank of ``comm`` (``None``: serial)."""
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}/{size}] " if rank > 0 else ""
    handler.setFormatter(logging.Formatter(f"{prefix}%(levelname)s: %(message)s"
                                           if rank > 0 else "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if rank == 0 else logging.ERROR)
    logger.propagate = False
    return logger


class Progress:
    """Text progress bar on one rank: ``\\r``-redrawn on a TTY (or when ``force``), otherwise a line
    every ~10 %. Disabled instances do nothing, so every rank can call it unconditionally.

    `start`: steps already done before this process (a resumed run); the rate and the ETA are measured
    from the steps done here only: eta = elapsed * (total - done) / (done - start)."""

    def __init__(self, total: int, label: str = "sampling", enabled: bool = True,
                 force: bool | None = None, stream: TextIO | None = None, width: int = 30, start: int = 0):
        self.total, self.label, self.width = max(int(total), 1), label, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        if force is None:
            force = os.environ.get("PQML_PROGRESS", "") == "force"
        self.tty = force or (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.status = ""
        self.start = self.done = min(max(int(start), 0), self.total)
        self._last_decile, self._last_draw, self.t0 = self.done * 10 // self.total, 0.0, time.monotonic()

    def update(self, n: int = 1, status: str = "") -> None:
        """Advance by n; `status` (e.g. "KL 0.12 lr 1e-3") is shown after the bar."""
        if not self.enabled:
            return
        self.status = status
        self.done = min(self.done + n, self.total)
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw > 0.1 or self.done == self.total:
                self._last_draw = now
                self._draw("\r")
        else:
            decile = self.done * 10 // self.total
            if decile > self._last_decile:
                self._last_decile = decile
                self._draw("")

    def _draw(self, start: str) -> None:
        frac = self.done / self.total
        el = time.monotonic() - self.t0
        here = self.done - self.start
        eta = el * (self.total - self.done) / here if here > 0 else 0.0
        bar = "#" * int(frac * self.width)
        end = "" if self.tty else "\n"
        self.stream.write(f"{start}{self.label} [{bar:<{self.width}}] {self.done}/{self.total} "
                          f"{100 * frac:5.1f}% {el:6.1f}s eta {eta:6.1f}s{' ' + self.status if self.status else ''}{end}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self._draw("\r")
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
