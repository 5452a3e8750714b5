"""Lock files: a running job owns its output file and its checkpoint directory (docs/config.md).

`PathLock(path, what)` holds an exclusive POSIX record lock (``fcntl.lockf``) on `path` (e.g.
``out.h5.lock``) for as long as the job lives, and writes one line into it: host, PID, start time and
`what` (the run it protects), for the error message another job gets. The kernel (or the NFS/Lustre
lock server) drops the lock when the process dies, whatever kills it, so a lock file left by a
SIGKILLed or crashed job is *stale* and is simply taken over (that is what lets `--resume` follow a
kill). A clean exit removes the file (unlink while still locked, then close; a job that opened the old
file sees that its inode is no longer the path's and retries).

File systems without working record locks (``ENOLCK``/``ENOSYS``/``EOPNOTSUPP``, e.g. NFS without lockd,
Lustre mounted ``noflock``): the line in the file decides instead: a holder on this host whose PID is
alive, or any holder on another host (which cannot be probed), keeps the lock; a dead local PID is stale.
Node-local locks (Lustre ``localflock``) do not see jobs on other nodes: there, do not run two jobs on
one output from different nodes.

Only world rank 0 takes locks (lifecycle.py broadcasts the decision), so this module has no MPI.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
from datetime import datetime, timezone

_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}
_HELD: list = []          # locks held by this process (released by release_all on the abort path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PathLock:
    """An advisory lock file; `acquire()` -> None (held) or the one-line reason it is in use."""

    def __init__(self, path: str, what: str):
        self.path, self.what, self.fd, self._made = os.path.abspath(path), what, None, []

    def _holder(self, fd) -> str:
        try:
            text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        except OSError:
            text = ""
        return text or "another job"

    def _mkdirs(self) -> None:
        d, missing = os.path.dirname(self.path), []
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for m in reversed(missing):
            os.mkdir(m)
            self._made.append(m)

    def acquire(self) -> str | None:
        """None if the lock is now held; else why not. OSError if the file cannot be created (nothing
        is left behind)."""
        try:
            return self._acquire()
        except BaseException:
            if self.fd is None:
                self._rmdirs()
            raise

    def _acquire(self) -> str | None:
        self._mkdirs()
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EAGAIN):
                    holder = self._holder(fd)
                    os.close(fd)
                    self._rmdirs()
                    return (f"in use by {holder} (lock file {self.path}); if that job is no longer running "
                            f"(e.g. its node failed), delete the lock file")
                if e.errno not in _NO_LOCKS:
                    os.close(fd)
                    raise
                msg = self._judge_by_content(fd)
                if msg:
                    os.close(fd)
                    self._rmdirs()
                    return msg
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:          # removed by its previous holder after we opened it: try again
                os.close(fd)
                continue
            line = (f"host {socket.gethostname()} pid {os.getpid()} since "
                    f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}: {self.what}\n")
            os.ftruncate(fd, 0)
            os.pwrite(fd, line.encode(), 0)
            os.fsync(fd)
            self.fd = fd
            _HELD.append(self)
            return None
        raise OSError(f"cannot take the lock {self.path}: it keeps being replaced")

    def _judge_by_content(self, fd) -> str | None:
        """No record locks on this file system: the holder named in the file decides."""
        words = self._holder(fd).split()
        if len(words) >= 4 and words[0] == "host" and words[2] == "pid" and words[3].isdigit():
            host, pid = words[1], int(words[3])
            if host != socket.gethostname() or (pid != os.getpid() and _pid_alive(pid)):
                return (f"in use by {' '.join(words)} (lock file {self.path}; this file system has no "
                        f"record locks, so a job on another host cannot be checked); if that job is no "
                        f"longer running, delete the lock file")
        return None

    def _rmdirs(self) -> None:
        for d in reversed(self._made):
            try:
                os.rmdir(d)
            except OSError:
                break
        self._made = []

    def release(self) -> None:
        """Remove the file (if held) and drop the lock; idempotent."""
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None
            if self in _HELD:
                _HELD.remove(self)
        self._rmdirs()


def release_all() -> None:
    """Release every lock this process holds (the CLI calls it before MPI_Abort)."""
    for lock in list(_HELD):
        try:
            lock.release()
        except OSError:
            pass
