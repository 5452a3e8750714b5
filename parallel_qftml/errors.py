"""User-facing errors: anything the user can fix by editing the config or the launch.

Every ``UserError`` makes the CLI print ``pqml: error: <message>`` (one line, rank 0 only)
and exit with code 2 on every rank.
"""
from __future__ import annotations

EXIT_USER_ERROR = 2
EXIT_CHECKPOINTED = 3   # stopped by SIGTERM/SIGUSR1 after writing a checkpoint; resume with --resume


class UserError(Exception):
    """A mistake in the input (config, geometry, output path); exit code 2."""

    exit_code = EXIT_USER_ERROR


class ConfigError(UserError):
    """Invalid configuration file or value; the message names the offending key."""


class LatticeError(UserError):
    """Impossible lattice/process-grid geometry (e.g. grid does not divide the lattice)."""


class OutputError(UserError):
    """Output path problem (exists without overwrite, not writable, ...)."""
