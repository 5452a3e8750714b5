"""Reading the couplings /couplings/{w, a, b, r} of an output file (pqml learn or pqml sample), e.g. to
sample a learned action (config: [action] kind = "file", path = ...)."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from . import schema as S


def read_couplings(path: str, shape) -> tuple:
    """(w (d, *shape), {a, b, r}, w_nnn) as global float64 arrays; UserError naming the file if it is
    missing, unreadable, incomplete or of another lattice."""
    import h5py
    shape = tuple(shape)
    try:
        with h5py.File(path, "r") as f:
            if S.COUPLINGS not in f:
                raise UserError(f"{path!r} has no /{S.COUPLINGS} group (not a pqml output file)")
            g = f[S.COUPLINGS]
            if g["w"].shape != (len(shape), *shape):
                raise UserError(f"{path!r}: /couplings/w has shape {g['w'].shape}, the lattice needs "
                                f"{(len(shape), *shape)}")
            w = g["w"][...]
            site = {n: g[n][...] for n in S.SITE_COUPLINGS}
            w_nnn = float(g.attrs.get(S.ATTR_W_NNN, 0.0))
    except (OSError, KeyError) as e:
        raise UserError(f"cannot read couplings from {path!r}: {e}") from None
    if not all(np.all(np.isfinite(x)) for x in (w, *site.values())):
        raise UserError(f"{path!r}: the couplings contain NaN or infinite values")
    return w, site, w_nnn
