"""The kernels are compiled without gathers (parallel_qftml/kernels/target.py, docs/performance.md
"Intel and AMD"): LLVM's Intel cost model turns the checkerboard's stride-2 loads into vgatherqpd,
which are slow on Intel server cores; `import parallel_qftml` adds +prefer-no-gather. Compile only
(for the icelake-server tuning with this host's instruction set), in a fresh process without cache."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys
sys.path.insert(0, {repo!r})
import numpy as np
from numba import njit, types
from numba.core import config
import parallel_qftml                       # kernels/target.py: host features + NO_GATHER
from parallel_qftml.kernels.target import NO_GATHER
assert config.CPU_FEATURES.endswith(NO_GATHER), config.CPU_FEATURES
if {control}:                               # the same tuning without the two features
    config.CPU_FEATURES = config.CPU_FEATURES[: -len(NO_GATHER) - 1]
config.CPU_NAME = "icelake-server"          # before numba builds its code generator
from parallel_qftml.kernels.metropolis import update_schedule
A = lambda t, n: types.Array(t, n, "C")
f8, i8, u4 = types.float64, types.int64, types.uint32
sig = (A(f8, 1), A(f8, 2), A(f8, 1), A(f8, 1), A(f8, 1), f8, A(i8, 1), A(i8, 1), A(i8, 3), A(i8, 2), i8, i8,
       u4, u4, u4, f8, i8, A(f8, 2), A(i8, 1), A(i8, 1), A(i8, 1), f8, f8)
update_schedule.compile(sig)
asm = update_schedule.inspect_asm(sig)
print("gathers", asm.count("vgather"), "ymm", asm.count("ymm"))
"""


def gathers(tmp_path, control: bool) -> int:
    env = {"PATH": "/usr/bin:/bin", "NUMBA_DISABLE_CACHE": "1", "NUMBA_CACHE_DIR": str(tmp_path),
           "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO), control=control)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert int(words[3]) > 0, "the kernel is not vectorised at all"
    return int(words[1])


def test_metropolis_kernel_has_no_gathers_for_intel_tuning(tmp_path):
    assert gathers(tmp_path, control=False) == 0


def test_without_the_features_llvm_would_gather(tmp_path):
    """The control: the check above can fail (measured: 13 gathers with LLVM 22 for icelake-server)."""
    assert gathers(tmp_path, control=True) > 0


def test_cache_is_keyed_by_the_sources(tmp_path):
    """numba's cache lives in NUMBA_CACHE_DIR/pqml-<hash of the package sources>: an edit of a file
    whose function is inlined elsewhere (exactsum.add_bits into measure.local_pieces) changes the
    directory, so no stale compiled code is loaded (kernels/target.isolate_cache)."""
    import shutil
    from parallel_qftml.kernels.target import source_hash
    code = "import parallel_qftml; from numba.core import config; print(config.CACHE_DIR)"
    env = {"PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "cache" / f"pqml-{source_hash()}")
    pkg = tmp_path / "copy"
    shutil.copytree(REPO / "parallel_qftml", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_hash(pkg) == source_hash()
    f = pkg / "kernels" / "exactsum.py"
    f.write_text(f.read_text() + "\n# an edit\n")
    assert source_hash(pkg) != source_hash()
