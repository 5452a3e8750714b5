"""The fused one-rank kernels (kernels/chain.py) equal the sweep-by-sweep Python path bit for bit:
configurations (ghosts included), accepted counts, acceptances and every measured value, for every
schedule the sampler builds (pipelined 2D, colour by colour in 1D, 3D and with diagonal couplings, 4
colours), several hits, the uniform proposal, and any split of the sweeps into calls."""
import numpy as np
import pytest
from mpi4py import MPI

from parallel_qftml.kernels.chain import OBS_COLUMNS
from parallel_qftml.io.schema import OBSERVABLE_NAMES
from parallel_qftml.models.action import PhiFourAction
from parallel_qftml.parallel.topology import Topology
from parallel_qftml.sampler import Sampler

CASES = {
    "2d-pipelined": dict(shape=(8, 6), action=PhiFourAction.perturbed(2, 3, 0.1)),
    "1d": dict(shape=(10,), action=PhiFourAction.perturbed(1, 4, 0.1)),
    "3d": dict(shape=(4, 6, 4), action=PhiFourAction.perturbed(3, 5, 0.1)),
    "2d-nnn": dict(shape=(8, 8), action=PhiFourAction.perturbed(2, 6, 0.1, w_nnn=0.15)),
    "2d-hits": dict(shape=(4, 4), action=PhiFourAction.perturbed(2, 7, 0.1), n_hits=3, delta=1.7),
    "2d-uniform": dict(shape=(6, 4), action=PhiFourAction.perturbed(2, 8, 0.1), proposal=(-2.5, 2.0)),
}


def make(case, fused: bool):
    c = dict(CASES[case])
    topo = Topology(MPI.COMM_SELF, c.pop("shape"))
    s = Sampler(topo, c.pop("action"), seed=2026, **c)
    assert s.local
    s.local = fused          # False: the Python path, sweep by sweep through update_schedule and the halo
    return s


def python_rows(s, n_meas, every):
    rows = []
    for _ in range(n_meas):
        s.sweep(every)
        m = s.measure()
        rows.append([m[c] for c in OBS_COLUMNS])
    return np.array(rows)


def same_bits(x, y):
    return np.array_equal(np.asarray(x).view(np.int64), np.asarray(y).view(np.int64))


def test_columns_are_the_file_columns():
    assert OBS_COLUMNS == OBSERVABLE_NAMES


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("every", [1, 3])
def test_fused_equals_python_path(case, every):
    ref, fused = make(case, False), make(case, True)
    assert same_bits(ref.phi, fused.phi)
    a = [ref.sweep(5), ref.sweep(1)]
    b = [fused.sweep(5), fused.sweep(1)]
    assert a == b and same_bits(ref.phi, fused.phi)
    r1 = python_rows(ref, 7, every)
    r2 = np.concatenate([fused.measured(3, every), fused.measured(1, every), fused.measured(3, every)])
    assert same_bits(r1, r2), np.argwhere(r1 != r2)
    assert same_bits(ref.phi, fused.phi) and ref.sweep_count == fused.sweep_count == 6 + 7 * every
    assert ref.measure() == fused.measure()           # measure() on the fused path: the same dict
    assert ref.last_acceptance == fused.last_acceptance


def test_measured_rows_change_with_the_field():
    """Guard against a kernel that measures a stale field: consecutive rows differ."""
    rows = make("2d-pipelined", True).measured(4, 1)
    assert len({r[0] for r in rows}) == 4 and np.all(np.isfinite(rows))
