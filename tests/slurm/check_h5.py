"""Checks on parallel_qftml output files for tests/slurm/run.sh (serial; never imports mpi4py).

    python tests/slurm/check_h5.py complete FILE       # root attribute complete == True, measurements present
    python tests/slurm/check_h5.py same A B [GROUP..]  # every dataset under the groups bit-identical

`same` compares every dataset under /observables (required in both files) and under each further
group that exists in either file (default: /configs), byte for byte (dtype, shape and raw bytes, so
NaNs compare equal only when their bits do). Prints one line per file or group; exit status 0 when
all checks pass, 1 otherwise, 2 on a usage error or an unreadable file.
"""
from __future__ import annotations

import sys

import h5py
import numpy as np

OBS = "observables"


def _datasets(group: h5py.Group, prefix: str = "") -> dict[str, h5py.Dataset]:
    out: dict[str, h5py.Dataset] = {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset):
            out[prefix + name] = item
        elif isinstance(item, h5py.Group):
            out.update(_datasets(item, prefix + name + "/"))
    return out


def complete(path: str) -> int:
    with h5py.File(path, "r") as f:
        flag = f.attrs.get("complete", None)
        if OBS not in f or "action" not in f[OBS]:
            print(f"FAIL {path}: no /{OBS}/action dataset")
            return 1
        n = f[OBS]["action"].shape[0]
        if flag is None or not bool(flag):
            print(f"FAIL {path}: attribute complete = {flag!r} (want True), {n} measurement(s)")
            return 1
        if n == 0:
            print(f"FAIL {path}: complete but 0 measurements")
            return 1
        shape = f[OBS]["action"].shape
        reps = shape[1] if len(shape) > 1 else 1
        print(f"ok   {path}: complete = True, {n} measurement(s) x {reps} replica(s)")
    return 0


def same(a: str, b: str, groups: list[str]) -> int:
    bad = 0
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for group in [OBS] + [g.strip("/") for g in groups]:
            in_a, in_b = group in fa, group in fb
            if not in_a and not in_b:
                if group == OBS:
                    print(f"FAIL /{group}: missing in both files")
                    bad += 1
                continue
            if in_a != in_b:
                print(f"FAIL /{group}: only in {a if in_a else b}")
                bad += 1
                continue
            da, db = _datasets(fa[group]), _datasets(fb[group])
            if set(da) != set(db):
                print(f"FAIL /{group}: different datasets: {sorted(set(da) ^ set(db))}")
                bad += 1
            if not da:
                print(f"FAIL /{group}: no datasets")
                bad += 1
            diff = []
            for name in sorted(set(da) & set(db)):
                x, y = da[name][()], db[name][()]
                if x.dtype != y.dtype or x.shape != y.shape:
                    diff.append(f"{name} ({x.dtype}{x.shape} vs {y.dtype}{y.shape})")
                elif np.ascontiguousarray(x).tobytes() != np.ascontiguousarray(y).tobytes():
                    ne = int(np.count_nonzero(~((x == y) | ((x != x) & (y != y))))) if x.dtype.kind in "fc" else -1
                    first = int(np.argwhere(x != y)[0][0]) if x.ndim and ne else -1
                    diff.append(f"{name} ({ne} element(s) differ, first at row {first})")
            if diff:
                print(f"FAIL /{group}: not bit-identical: {', '.join(diff)}")
                bad += 1
            elif da:
                shapes = ", ".join(f"{n}{tuple(d.shape)}" for n, d in sorted(da.items()))
                print(f"ok   /{group}: {len(da)} dataset(s) bit-identical: {shapes}")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 2 and argv[0] == "complete":
            return complete(argv[1])
        if len(argv) >= 3 and argv[0] == "same":
            return same(argv[1], argv[2], argv[3:] or ["configs"])
    except OSError as e:
        print(f"FAIL cannot read: {e}")
        return 2
    print("usage:\n" + "\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
