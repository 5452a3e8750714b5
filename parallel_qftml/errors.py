"""User-facing errors: anything the user can fix by editing the config or the launch.

Every ``UserError`` makes the CLI print ``pqml: error: <message>`` (one line, rank 0 only)
and exit with code 2 on every rank.
"""
from __future__ import annotations

EXIT_USER_ERROR = 2
EXIT_CHECKPOINTED = 3   # stopped by SIGTERM/SIGUSR1 after writing a checkpoint; resume with --resume
EXIT_RUN_FAILED = 4     # stopped by an error after the run started writing (a write failed: disk full,
                        # quota, I/O error; pqml learn: diverged); the message names the last good checkpoint


class UserError(Exception):
    """A mistake in the input (config, geometry, output path); exit code 2."""

    exit_code = EXIT_USER_ERROR


class ConfigError(UserError):
    """Invalid configuration file or value; the message names the offending key."""


class LatticeError(UserError):
    """Impossible lattice/process-grid geometry (e.g. grid does not divide the lattice)."""


class OutputError(UserError):
    """Output path problem (exists without overwrite, not writable, ...)."""


class WriteError(Exception):
    """A write of a running job failed (disk full, quota, I/O error): exit code 4. Deliberately not a
    UserError: the drivers' clean-up of a UserError closes files collectively, which would hang while
    another rank waits inside a collective write and would write metadata onto a full disk. The CLI
    prints one line naming the file and the last good checkpoint and ends the job at once, as a kill
    would (MPI_Abort on several ranks): the output stays as of the last checkpoint (docs/schema.md)."""

    exit_code = EXIT_RUN_FAILED

    def __init__(self, path, err: BaseException):
        import os
        import shutil
        self.path = str(path)
        why = (err.strerror or str(err)) if isinstance(err, OSError) else str(err)
        try:                  # HDF5 says only "file write failed": say how full the disk is
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
            why += f" ({free / 2**20:.1f} MiB free on its file system)"
        except OSError:
            pass
        super().__init__(f"cannot write {self.path!r}: {why}")
