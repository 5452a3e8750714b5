"""Output and checkpoints of `pqml rbm` (docs/rbm.md). RBM weights are small and identical on every
rank (data parallelism, parallel/rows.py), so world rank 0 writes them with serial h5py.

Output file (output.path; every dataset and attribute: docs/schema.md, "RBM file"): root attributes as
for the other runs; /rbm/epoch (n,) (a row every output.save_every epochs), /rbm/<series> (n,) for
RBM_SERIES; /rbm/eigenvalues (n, N_v) ascending λ_α = μ² − σ_h² ξ_α²; /rbm/singular_values
(n, min(N_v, N_h)) descending (scalar-field RBM only); /rbm/params/<name>: the final parameters (scalar
RBM: W, eta, mu2; phi^4 network: W, r, a, b, s, m, n), attributes model, sigma_h2.
Checkpoint <dir>/ckpt-<epoch>.h5: W, mu2 (or the phi^4 coefficients), the PCD chains, the optimiser
slots and step, the epoch, with a SHA-256 of every array checked on load and the run_id; written to a
temporary and renamed atomically (as io/checkpoint.py).
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from .. import debughooks
from ..errors import WriteError
from . import schema as S

RBM_SERIES = ("lr", "mu2", "kl", "grad_norm", "free_energy", "backtracks")


def _sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()


class RBMFile:
    """Every rank constructs it; only world rank 0 touches the file."""

    def __init__(self, path, comm, n_visible: int, n_hidden: int, metadata=None, reopen_rows: int | None = None,
                 spectra: bool = True):
        import h5py
        self.root = comm.Get_rank() == 0
        self.path, self.rows, self.n, self.spectra = path, [], 0, spectra
        self.names = ("epoch",) + RBM_SERIES + (("eigenvalues", "singular_values") if spectra else ())
        if not self.root:
            return
        if reopen_rows is None:
            tmp = f"{path}.part"
            with h5py.File(tmp, "w") as f:
                f.attrs.update({k: v for k, v in (metadata or {}).items() if v is not None})
                f.attrs.update({S.ATTR_SCHEMA_VERSION: S.SCHEMA_VERSION, S.ATTR_COMPLETE: False})
                g = f.create_group("rbm")
                g.create_dataset("epoch", (0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
                for name in RBM_SERIES:
                    g.create_dataset(name, (0,), maxshape=(None,), dtype=np.float64, chunks=(1024,))
                if spectra:
                    g.create_dataset("eigenvalues", (0, n_visible), maxshape=(None, n_visible), dtype=np.float64,
                                     chunks=(max(1, 2 ** 20 // (8 * n_visible)), n_visible))
                    m = min(n_visible, n_hidden)
                    g.create_dataset("singular_values", (0, m), maxshape=(None, m), dtype=np.float64,
                                     chunks=(max(1, 2 ** 20 // (8 * m)), m))
            os.replace(tmp, path)
        else:
            with h5py.File(path, "r+") as f:
                g = f["rbm"]
                for name in self.names:
                    g[name].resize(reopen_rows, axis=0)
                f.attrs[S.ATTR_COMPLETE] = False
            self.n = reopen_rows

    def append(self, epoch: int, row: dict, eig=None, sv=None) -> None:
        if self.root:
            self.rows.append((epoch, row, None if eig is None else eig.copy(), None if sv is None else sv.copy()))

    def flush(self, params: dict | None = None, attrs: dict | None = None, complete: bool | None = None) -> int:
        """_flush; a failed write (disk full) raises WriteError naming the file (CLI: exit 4)."""
        try:
            return self._flush(params, attrs, complete)
        except (OSError, RuntimeError) as e:
            raise WriteError(self.path, e) from e

    def _flush(self, params: dict | None = None, attrs: dict | None = None, complete: bool | None = None) -> int:
        """Write the buffered rows (and the parameters); returns the number of rows in the file."""
        import h5py
        if self.root:
            with h5py.File(self.path, "r+") as f:
                g = f["rbm"]
                n0, n = self.n, self.n + len(self.rows)
                if self.rows:
                    for name in self.names:
                        g[name].resize(n, axis=0)
                    g["epoch"][n0:n] = [e for e, *_ in self.rows]
                    for name in RBM_SERIES:
                        g[name][n0:n] = [r.get(name, np.nan) for _, r, *_ in self.rows]
                    if self.spectra:
                        g["eigenvalues"][n0:n] = np.array([x for *_, x, _ in self.rows])
                        g["singular_values"][n0:n] = np.array([x for *_, x in self.rows])
                if params is not None:
                    pg = g.require_group("params")
                    for name, val in params.items():
                        if name in pg:
                            del pg[name]
                        pg[name] = np.asarray(val, dtype=np.float64)
                g.attrs.update(attrs or {})
                if complete is not None:
                    f.attrs[S.ATTR_COMPLETE] = bool(complete)
            self.rows, self.n = [], n
        return self.n


def write_rbm_checkpoint(directory: str, comm, epoch: int, arrays: dict, attrs: dict, keep: int) -> str:
    """_write_rbm_checkpoint; if a write fails (disk full), its temporary is deleted and WriteError
    raised (CLI: exit 4): a half-written checkpoint is never renamed into place."""
    from .checkpoint import checkpoint_path, tmp_path
    try:
        return _write_rbm_checkpoint(directory, comm, epoch, arrays, attrs, keep)
    except (OSError, RuntimeError) as e:
        tmp = tmp_path(checkpoint_path(directory, epoch), str(attrs.get(S.ATTR_RUN_ID, "")))
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise WriteError(tmp, e) from e


def _write_rbm_checkpoint(directory: str, comm, epoch: int, arrays: dict, attrs: dict, keep: int) -> str:
    """Rank 0 writes `arrays` (name -> global array) and `attrs` (with the run_id); atomic; keeps the
    newest `keep` of this run (io/checkpoint.py: temporaries named by run, other runs' files untouched)."""
    import h5py
    from .checkpoint import checkpoint_owner, checkpoint_path, list_checkpoints, tmp_path
    path = checkpoint_path(directory, epoch)
    run_id = str(attrs.get(S.ATTR_RUN_ID, ""))
    if comm.Get_rank() == 0:
        os.makedirs(directory, exist_ok=True)
        tmp = tmp_path(path, run_id)
        with h5py.File(tmp, "w") as f:
            for k, v in arrays.items():
                f[k] = np.asarray(v, dtype=np.float64)
                f[k].attrs["sha256"] = _sha(v)
            debughooks.write_error("checkpoint", 0)     # test hook (PQML_DEBUG_HOOKS=1 only)
            f.attrs.update(attrs)
            f.attrs["epoch"] = int(epoch)
            f.attrs[S.ATTR_SCHEMA_VERSION] = S.SCHEMA_VERSION
        fd = os.open(tmp, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
        for old in [p for p in list_checkpoints(directory) if checkpoint_owner(p) == run_id][keep:]:
            os.remove(old)
    comm.Barrier()
    return path


def _try_load_rbm(path: str, comm):
    import h5py
    from ..parallel.reductions import first_message
    result, reason = None, None
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f}
            for k in arrays:
                if f[k].attrs["sha256"] != _sha(arrays[k]):
                    raise ValueError(f"checksum mismatch in /{k}")
            result = (arrays, {k: f.attrs[k] for k in f.attrs}, path)
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
    reason = first_message(reason, comm)
    return (None, reason) if reason is not None else (result, None)


def load_rbm_checkpoint(directory: str, comm, warn, run_id: str | None = None):
    """(arrays, attrs, path) of the newest valid checkpoint (of run `run_id`, if given; every rank reads
    it), or None; as io.checkpoint.find_latest (invalid ones warned about and skipped)."""
    from .checkpoint import find_latest
    return find_latest(directory, comm, lambda p: _try_load_rbm(p, comm), warn, run_id)
