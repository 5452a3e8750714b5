"""The CPU the numba kernels are compiled for: the host, with gathers and scatters disfavoured.

LLVM's cost model for Intel cores since Skylake turns the kernels' stride-2 loads (one colour of a
checkerboard row: phi, w, a, b, r at x = p0 + 2j) into ``vgatherqpd``; its AMD models (znver*) build the
same vectors from scalar loads, and gcc never gathers here. Gathers are slow on the Intel server cores
that carry the Gather Data Sampling microcode mitigation (Skylake to Ice Lake), which is why the
Metropolis kernel reached only ~0.4-0.6 x the C reference on an Ice Lake server and 0.8-1.5 x on AMD.
LLVM's tuning features ``+prefer-no-gather,+prefer-no-scatter`` (LLVM >= 17) remove every gather from
the Metropolis kernel when compiled for icelake-server (13 before); the arithmetic, hence every bit
of every result, is unchanged. Measurements and the reasoning: docs/performance.md, "Intel and AMD".

`configure()` appends those two features to the host's feature string once, before numba builds its
CPU code generator (this package's ``__init__`` calls it first thing). It does nothing if the user set
NUMBA_CPU_FEATURES or NUMBA_CPU_NAME (their choice wins), if numba's CPU target is already
initialised, or if llvmlite's LLVM predates the features. The string is set in numba's config only,
never in the environment, so child processes on other nodes (srun exports the environment) still
detect their own CPU. The numba cache key includes the features, so cached code stays consistent.

`isolate_cache()` (also called first thing) moves numba's cache, when NUMBA_CACHE_DIR is set, into a
subdirectory named by a hash of the package's numba sources. numba checks only the file of the
function it loads (its mtime and size), not the files of the functions it inlined: a changed
kernels/exactsum.add_bits would otherwise be run from a stale kernels/measure.local_pieces (seen
here). With the hash, any edit or upgrade of a kernel source compiles everything afresh.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

NO_GATHER = "+prefer-no-gather,+prefer-no-scatter"


def configure() -> str | None:
    """Set numba's CPU features to host + NO_GATHER; returns the string set, or None if left alone."""
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_CPU_NAME"):
        return None
    try:
        import llvmlite.binding as ll
        from numba.core import config
    except ImportError:          # numba missing: the import of the kernels will say so
        return None
    if config.CPU_FEATURES is not None or ll.llvm_version_info < (17,):
        return None
    ll.initialize_native_target()
    features = ll.get_host_cpu_features().flatten()
    if "+prefer-no-gather" not in features:
        features = f"{features},{NO_GATHER}" if features else NO_GATHER
    config.CPU_FEATURES = features
    return features


def source_hash(root=None) -> str:
    """Hash of every .py file of the package (names and contents): the kernels and what they inline."""
    root = Path(root) if root else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def isolate_cache() -> str | None:
    """Point numba's cache at NUMBA_CACHE_DIR/pqml-<source_hash>; returns it (None if no cache dir set)."""
    base = os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        return None
    from numba.core import config
    path = os.path.join(base, f"pqml-{source_hash()}")
    config.CACHE_DIR = path
    return path
