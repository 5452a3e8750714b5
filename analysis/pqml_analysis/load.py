"""Reading the package's HDF5 run files (docs/schema.md) with plain h5py: no mpi4py, no package import.

Series are named `ensemble|replica` as in pyerrors: the ensemble is the file's stem (or a name given),
the replica the column of the file's (n_meas, n_replicas) datasets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def load_run(path) -> dict:
    """{"attrs": root attributes, "sweep": (n_meas,), "observables": {name: (n_meas, n_replicas)},
    "complete": bool}. Refuses files of another schema version."""
    import h5py
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        if int(attrs.get("schema_version", -1)) != 2:
            raise ValueError(f"{path}: schema_version {attrs.get('schema_version')} (this reader knows 2)")
        g = f["observables"]
        obs = {k: g[k][()] for k in g if k not in ("sweep", "replica")}
        return {"attrs": attrs, "sweep": g["sweep"][()], "observables": obs,
                "complete": bool(attrs.get("complete", False))}


def load_series(paths, name: str, ensemble: str | None = None) -> dict:
    """{"ensemble|replica": 1D series of observable `name`} over one or several files."""
    out = {}
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        run = load_run(p)
        data = run["observables"][name]
        ens = ensemble or Path(p).stem
        for r in range(data.shape[1]):
            out[f"{ens}|{r}"] = np.asarray(data[:, r])
    return out
