"""Stop requests: SIGTERM and SIGUSR1 (what SLURM sends before the time limit) set a flag that the run
checks at its next safe point, on every rank together; it then writes a checkpoint and exits with
EXIT_CHECKPOINTED (errors.py)."""
from __future__ import annotations

import signal

from .parallel.reductions import any_rank

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self) -> "StopRequest":
        for sig in STOP_SIGNALS:
            self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handler(self, signum, frame) -> None:
        self.signum = signum

    def requested(self, comm) -> bool:
        """True on every rank if any rank received a stop signal (collective)."""
        return any_rank(self.signum is not None, comm)
