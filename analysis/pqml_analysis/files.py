"""Robust opening of measurement files for the analysis scripts (h5py only; no mpi4py, no package import).

Every problem with an input file becomes an AnalysisError whose message is one line naming the file:

    missing file, a directory        "F: no such file" / "F: is a directory, not a file"
    empty (0-byte) file              "F: empty file (0 bytes; the run may not have started writing)"
    not HDF5, truncated, corrupt     "F: not an HDF5 file" / "F: truncated or corrupt HDF5 file (...)"
    another schema_version           "F: schema_version 1, this reader knows 2 (docs/schema.md)"
    a learning file / a checkpoint   "F: is a learning file (pqml learn); a measurement file (pqml sample)
                                      is expected" (and likewise for checkpoints, other HDF5 files)
    an unknown observable            "F: no observable 'x' (has: action, nn, ...)"
    NaN or inf in an observable      "F: observable 'x' has N non-finite entries (...)" (finite_series)

An incomplete run (root attribute complete = false: still running, crashed or stopped; the file holds
the state of its last checkpoint) is not an error: open_measurement() reports it through `warn`
(one line) and returns the data. Scripts use fail() / warn_line() for `<script>: error: <message>`
(exit code 2) and `<script>: warning: <message>`, and check_outputs() so that no output is overwritten
without --force.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["AnalysisError", "SCHEMA_VERSION", "open_measurement", "run_series", "finite_series", "pooled",
           "check_outputs", "fail", "warn_line"]

SCHEMA_VERSION = 2


class AnalysisError(ValueError):
    """A user-facing error: the message is one line and names the file concerned."""


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _h5_reason(exc: BaseException) -> str:
    """The useful part of an HDF5 error message, on one line."""
    msg = _one_line(exc)
    for key in ("truncated file", "bad object header", "file signature not found", "bad symbol table",
                "addr overflow", "wrong B-tree signature", "inflate() failed", "checksum"):
        if key.lower() in msg.lower():
            i = msg.lower().index(key.lower())
            return msg[i:i + 120].rstrip(")")
    return msg[:160]


def open_measurement(path, warn=None) -> dict:
    """Read a measurement file of `pqml sample` (schema 2, docs/schema.md):
    {"path", "attrs", "sweep" (n_meas,), "observables" {name: (n_meas, n_replicas)}, "complete", "shape",
    "volume", "n_meas", "n_replicas"}. Raises AnalysisError (one line naming the file); an incomplete run
    is reported through warn(message) (default: warnings.warn) and read."""
    p = Path(path)
    if not p.exists():
        raise AnalysisError(f"{p}: no such file")
    if p.is_dir():
        raise AnalysisError(f"{p}: is a directory, not a file")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise AnalysisError(f"{p}: cannot read ({_one_line(e.strerror or e)})") from None
    if size == 0:
        raise AnalysisError(f"{p}: empty file (0 bytes; the run may not have started writing)")
    import h5py
    try:
        is_h5 = h5py.is_hdf5(str(p))
    except OSError as e:
        raise AnalysisError(f"{p}: cannot read ({_h5_reason(e)})") from None
    if not is_h5:
        raise AnalysisError(f"{p}: not an HDF5 file (no HDF5 signature; a text file or a partial copy?)")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise AnalysisError(f"{p}: truncated or corrupt HDF5 file ({_h5_reason(e)})") from None
    try:
        with f:
            try:
                attrs = {k: f.attrs[k] for k in f.attrs}
            except (OSError, RuntimeError, KeyError) as e:
                raise AnalysisError(f"{p}: corrupt HDF5 file: cannot read the root attributes ({_h5_reason(e)})") \
                    from None
            if "sweep_count" in attrs:
                raise AnalysisError(f"{p}: is a checkpoint (pqml sample --resume reads it); a measurement file "
                                    f"(output.path of pqml sample) is expected")
            if "learn_mode" in attrs or "learning" in f:
                raise AnalysisError(f"{p}: is a learning file (pqml learn); a measurement file (pqml sample) is "
                                    f"expected")
            if "schema_version" not in attrs:
                raise AnalysisError(f"{p}: not a parallel_qftml file (no schema_version attribute)")
            version = attrs["schema_version"]
            try:
                version = int(version)
            except (TypeError, ValueError):
                pass
            if version != SCHEMA_VERSION:
                raise AnalysisError(f"{p}: schema_version {version}, this reader knows {SCHEMA_VERSION} "
                                    f"(docs/schema.md)")
            if "observables" not in f:
                raise AnalysisError(f"{p}: no /observables group: not a measurement file of pqml sample")
            try:
                g = f["observables"]
                obs = {k: np.asarray(g[k][()], dtype=np.float64) for k in g if k not in ("sweep", "replica")}
                sweep = np.asarray(g["sweep"][()]) if "sweep" in g else None
            except (OSError, RuntimeError, KeyError, ValueError) as e:
                raise AnalysisError(f"{p}: corrupt HDF5 file: cannot read /observables ({_h5_reason(e)})") from None
    except AnalysisError:
        raise
    except (OSError, RuntimeError) as e:
        raise AnalysisError(f"{p}: truncated or corrupt HDF5 file ({_h5_reason(e)})") from None
    shapes = {v.shape for v in obs.values()}
    if not obs or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise AnalysisError(f"{p}: /observables does not hold (n_meas, n_replicas) series of equal shape "
                            f"({', '.join(f'{k} {v.shape}' for k, v in obs.items()) or 'empty'})")
    n_meas, n_rep = next(iter(shapes))
    if n_meas == 0:
        raise AnalysisError(f"{p}: no measurements yet (0 rows in /observables)")
    complete = bool(attrs.get("complete", False))
    if not complete:
        msg = (f"{p}: run not complete (complete = false: still running, crashed or stopped); using the "
               f"{n_meas} measurements of its last checkpoint")
        if warn is None:
            import warnings
            warnings.warn(msg, UserWarning, stacklevel=2)
        else:
            warn(msg)
    shape = tuple(int(v) for v in np.atleast_1d(attrs.get("global_shape", ())))
    return {"path": p, "attrs": attrs, "sweep": sweep, "observables": obs, "complete": complete,
            "shape": shape, "volume": int(np.prod(shape)) if shape else None, "n_meas": int(n_meas),
            "n_replicas": int(n_rep)}


def run_series(run: dict, name: str, ensemble: str | None = None) -> dict:
    """{"ensemble|replica": 1D series} of observable `name` (ensemble: the file's stem by default)."""
    data = finite_series(run, [name])[name]
    ens = ensemble or run["path"].stem
    return {f"{ens}|{r}": data[:, r] for r in range(data.shape[1])}


def finite_series(run: dict, names) -> dict:
    """{name: (n_meas, n_replicas) array} of the named observables of an open_measurement() run; an
    AnalysisError naming the file for an unknown observable or one with a NaN or inf entry (one check
    for every script: a non-finite value would make every mean, error and verdict NaN)."""
    obs = run["observables"]
    out = {}
    for name in names:
        if name not in obs:
            raise AnalysisError(f"{run['path']}: no observable {name!r} (has: {', '.join(obs)})")
        bad = ~np.isfinite(obs[name])
        if bad.any():
            raise AnalysisError(f"{run['path']}: observable {name!r} has {int(bad.sum())} non-finite entries "
                                f"(unwritten rows of a damaged file?)")
        out[name] = obs[name]
    return out


def pooled(series_list, n_bins: int) -> np.ndarray:
    """The replicas' series, each cut to a multiple of n_bins (leading entries dropped, as
    errors.bin_averages does), one after another: binning the result into len(series_list) * n_bins bins
    gives bins that never straddle two replicas."""
    out = []
    for s in series_list:
        s = np.asarray(s, dtype=np.float64)
        size = s.size // n_bins
        if size < 1:
            raise ValueError(f"series of length {s.size} is too short for {n_bins} bins")
        out.append(s[s.size - size * n_bins:])
    if len({len(s) for s in out}) != 1:
        raise ValueError("replicas of unequal length")
    return np.concatenate(out)


def check_outputs(paths, force: bool) -> None:
    """AnalysisError naming the first existing output unless force."""
    if force:
        return
    for q in map(Path, paths):
        if q.exists():
            raise AnalysisError(f"{q}: exists (use --force to overwrite)")


def fail(script: str, message) -> int:
    """Print `<script>: error: <message>` (one line) to stderr; return the exit code 2."""
    print(f"{script}: error: {_one_line(message)}", file=sys.stderr)
    return 2


def warn_line(script: str):
    """A warn callable printing `<script>: warning: <message>` to stderr."""
    return lambda message: print(f"{script}: warning: {_one_line(message)}", file=sys.stderr)
