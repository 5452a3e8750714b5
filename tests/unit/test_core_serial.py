"""Serial checks of the core: Philox KAT, the yardstick reference checksums, geometry errors, halo on 1 rank."""
import numpy as np
import pytest
from mpi4py import MPI

from parallel_qftml.bench.metropolis import checksum, run_check
from parallel_qftml.errors import LatticeError
from parallel_qftml.lattice.geometry import Geometry, split_grid
from parallel_qftml.models.action import PhiFourAction
from parallel_qftml.parallel.halo import HaloExchange
from parallel_qftml.parallel.topology import Topology
from parallel_qftml.rng import philox, u53


@pytest.mark.parametrize("ctr,key,out", [
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((2**32 - 1,) * 4, (2**32 - 1,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
])
def test_philox_known_answers(ctr, key, out):
    assert tuple(int(x) for x in philox(*ctr, *key)) == out


def test_yardstick_debug_vector():
    o = philox(0, 0, 0, 0, 12345, 0)
    assert tuple(int(x) for x in o) == (0xd1fa3e81, 0x2f7fea51, 0xd2ca9611, 0xe328bbe0)
    assert u53(o[0], o[1]) == 0.8202246728319548
    assert u53(o[2], o[3]) == 0.8234037202520622


@pytest.mark.parametrize("L,sweeps,seed,delta,inhom,ref", [
    (64, 50, 12345, 0.7, 1, "2e91a36a08c4841c"),
    (10, 200, 987654321987, 1.3, 1, "2a4a5e016a7458fc"),
    (128, 10, 12345, 1.0, 0, "e0d221f97915dcef"),
    (4, 1, 12345, 1.0, 1, "55adff63f787a73b"),
])
def test_yardstick_reference_checksums(L, sweeps, seed, delta, inhom, ref):
    """The kernel reproduces the C reference of ../shared/yardstick bit for bit."""
    line = run_check(MPI.COMM_SELF, L, sweeps, seed, delta, inhom)
    assert line.endswith(f"checksum={ref}")


def test_yardstick_debug_initial_state():
    from parallel_qftml.sampler import Sampler
    topo = Topology(MPI.COMM_SELF, (4, 4))
    s = Sampler(topo, PhiFourAction.perturbed(2, 12345, 0.1), seed=12345)
    assert s.interior()[0, 0] == -0.6110138924165323
    pad = lambda x: x.reshape(topo.geometry.padded_shape)[1, 1]
    assert (pad(s.w[1]), pad(s.w[0]), pad(s.a), pad(s.b), pad(s.r)) == (
        1.0606367375994243, 0.9415741877034811, 1.4862499119979118, 0.226931056138547, -0.05530042537974409)
    s.sweep(1)
    assert s.interior()[0, 0] == 0.029435453247377286


def _spec_checksum(field):
    """The yardstick spec, vectorised in uint64 (independent of bench.checksum's Python-int loop):
    XOR over i of splitmix64-finaliser(bits(phi_i) + 0x9E3779B97F4A7C15 * i mod 2^64)."""
    z = np.ascontiguousarray(field, dtype=np.float64).ravel().view(np.uint64).copy()
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15) * np.arange(z.size, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return f"{int(np.bitwise_xor.reduce(z ^ (z >> np.uint64(31)))):016x}"


def test_checksum_follows_the_spec():
    """bench.checksum equals an independent implementation of the spec on a random 6x4 field, and it
    sees what it must: the order of the sites, the sign of zero, one bit of one value."""
    phi = np.random.default_rng(3).standard_normal((6, 4))
    ref = checksum(phi)
    assert ref == _spec_checksum(phi) and len(ref) == 16
    swapped = phi.copy()
    swapped[0, 0], swapped[2, 3] = phi[2, 3], phi[0, 0]
    flipped = phi.copy()
    flipped.view(np.uint64)[1, 1] ^= np.uint64(1)                 # last bit of one mantissa
    zeros = np.zeros(8)
    negzero = zeros.copy()
    negzero[5] = -0.0
    for other in (swapped, flipped, phi.T, negzero):
        assert checksum(other) == _spec_checksum(other) and checksum(other) != ref
    assert checksum(zeros) != checksum(negzero)
    # the value of the zero field follows from the spec by hand: bits(0.0) = 0, so term i = mix64(golden * i)
    assert checksum(np.zeros(1)) == "0000000000000000"            # mix64(0) = 0


@pytest.mark.parametrize("shape,grid,msg", [
    ((16, 16), (3, 1), "does not divide"),
    ((6, 8), (2, 1), "odd"),
    ((7, 8), (1, 1), "even"),
    ((8,) * 5, (1,) * 5, "1 to 4"),
])
def test_geometry_errors(shape, grid, msg):
    with pytest.raises(LatticeError, match=msg):
        Geometry(shape, grid, (0,) * len(grid))


def test_split_grid():
    assert split_grid((16, 16), 4) == (2, 2)
    assert split_grid((8, 8, 8), 2) == (2, 1, 1)
    assert split_grid((64, 8), 4) == (4, 1)
    with pytest.raises(LatticeError):
        split_grid((2, 2), 2)


@pytest.mark.parametrize("shape", [(8,), (6, 4), (4, 6, 2), (2, 4, 2, 4)])
@pytest.mark.parametrize("nnn", [False, True])
def test_halo_single_rank_equals_periodic_wrap(shape, nnn):
    topo = Topology(MPI.COMM_SELF, shape)
    g = topo.geometry
    halo = HaloExchange(topo, nnn)
    glob = np.arange(np.prod(shape), dtype=float).reshape(shape) + 0.5
    f = np.full(int(np.prod(g.padded_shape)), np.nan)
    f.reshape(g.padded_shape)[g.interior] = glob
    halo.exchange(f)
    assert np.array_equal(f.reshape(g.padded_shape), np.pad(glob, 1, mode="wrap"))
    # colour by colour: change one colour's sites, exchange only that colour, ghosts follow
    for c in range(g.n_colours(nnn)):
        gc = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        mask = g.colour_of(gc, nnn) == c
        glob = np.where(mask, glob + 1000.0, glob)
        f.reshape(g.padded_shape)[g.interior] = glob
        halo.exchange(f, c)
        assert np.array_equal(f.reshape(g.padded_shape), np.pad(glob, 1, mode="wrap"))


def _interior(s, x):
    return x.reshape(s.geom.padded_shape)[s.geom.interior].copy()


def test_inhomogeneous_arrays_equal_perturbed_couplings():
    """Explicit global coupling arrays reproduce the keyed (perturbed) couplings bit for bit."""
    from parallel_qftml.sampler import Sampler
    topo = Topology(MPI.COMM_SELF, (8, 6))
    s1 = Sampler(topo, PhiFourAction.perturbed(2, 5, 0.2, b=0.3, r=0.1, w_nnn=0.05), seed=5)
    w = np.stack([_interior(s1, s1.w[mu]) for mu in range(2)])
    act = PhiFourAction.inhomogeneous(w, _interior(s1, s1.a), _interior(s1, s1.b), _interior(s1, s1.r), 0.05)
    s2 = Sampler(topo, act, seed=5)
    s1.sweep(20)
    s2.sweep(20)
    assert s1.gather().tobytes() == s2.gather().tobytes()
    assert s1.measure() == s2.measure()


def test_target_action_and_lattice_form():
    from parallel_qftml.errors import UserError
    from parallel_qftml.models.action import TargetAction
    from parallel_qftml.sampler import Sampler
    g = {"nn": -1.0, "phi2": 1.52425, "phi4": 0.175, "nnn": -0.5, "phi": 0.1}
    act = PhiFourAction.from_target(2, g)
    assert (act.w, act.a, act.b, act.r, act.w_nnn) == ((1.0, 1.0), 1.52425, 0.175, 0.1, 0.5)
    s = Sampler(Topology(MPI.COMM_SELF, (8, 8)), act, seed=3)
    s.sweep(10)
    m = s.measure()
    assert TargetAction(g).evaluate(m) == pytest.approx(m["action"], rel=1e-12)
    z = TargetAction({**g, "i_phi2": 0.15}).evaluate(m)
    assert z.imag == 0.15 * m["phi2"] and z.real == TargetAction(g).evaluate(m)
    with pytest.raises(UserError, match="complex"):
        PhiFourAction.from_target(2, {**g, "i_phi2": 0.15})
    with pytest.raises(UserError, match="unknown"):
        TargetAction({"phi3": 1.0})
    lat = PhiFourAction.from_lattice(3, kappa=0.2, mu2=-1.0, lam=0.8)
    assert (lat.w, lat.a, lat.b) == ((0.2,) * 3, (-1.0 + 6 * 0.2) / 2, 0.2)
