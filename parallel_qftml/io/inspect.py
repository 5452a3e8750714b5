"""`pqml inspect FILE.h5`: metadata, datasets with shapes and sizes, and whether the file is complete."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from . import schema as S


def inspect_lines(path: str) -> list:
    import h5py
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise UserError(f"cannot open {path!r} as HDF5: {e}") from None
    lines = [f"file            {path}"]
    with f:
        a = f.attrs
        kind = "checkpoint" if "sweep_count" in a else "measurement file"
        lines.append(f"kind            {kind}, schema_version {a.get(S.ATTR_SCHEMA_VERSION, '?')}")
        if kind == "measurement file":
            lines.append(f"complete        {bool(a.get(S.ATTR_COMPLETE, False))}")
        for k in sorted(a):
            if k in ("config_text",):
                continue
            v = a[k]
            v = v.tolist() if isinstance(v, np.ndarray) else v
            lines.append(f"  @{k:<22} {v}")
        if "config_text" in a:
            lines.append("  @config_text:")
            lines += ["      " + ln for ln in str(a["config_text"]).splitlines()]
        lines.append("datasets:")

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                lines.append(f"  /{name:<28} {str(obj.shape):<26} {str(obj.dtype):<8} "
                             f"{obj.size * obj.dtype.itemsize / 2**20:10.3f} MiB")
        f.visititems(visit)
    return lines
