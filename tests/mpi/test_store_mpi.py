"""The configuration store under mpirun: what each rank writes (collective MPI-IO) reads back
serially equal to the gathered fields, bit for bit; also with replicas x grid; and checkpoints
written on this world load on one rank."""
import h5py
import pytest
from mpi4py import MPI

from parallel_qftml.io.checkpoint import load_latest, write_checkpoint
from parallel_qftml.io.output import RunFile
from parallel_qftml.models.action import PhiFourAction
from parallel_qftml.parallel.reductions import replica_values
from parallel_qftml.parallel.topology import Topology
from parallel_qftml.sampler import Sampler

WORLD = MPI.COMM_WORLD


def _tmpdir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("store")) if WORLD.Get_rank() == 0 else None
    return WORLD.bcast(d, root=0)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("n_replicas", [1, 2])
def test_saved_configurations_equal_gathered_fields(tmp_path_factory, n_replicas):
    d = _tmpdir(tmp_path_factory)
    shape = (16, 8, 4)
    topo = Topology(WORLD, shape, n_replicas=n_replicas)
    s = Sampler(topo, PhiFourAction.perturbed(3, 5, 0.1, w_nnn=0.05), seed=5)
    out = RunFile.create(f"{d}/run.h5", topo, {"note": "test"}, True, True, s)
    fields = []
    for k in range(3):
        s.sweep(5)
        out.save_config(s.sweep_count, s)
        field = s.gather()
        fields.append(WORLD.gather((topo.replica, field) if topo.is_grid_root else None, root=0))
    out.close(True)
    if WORLD.Get_rank() == 0:
        with h5py.File(f"{d}/run.h5", "r") as f:
            phi = f["configs/phi"][()]
            assert list(f["configs/sweep"][()]) == [5, 10, 15]
            assert [d[0].name for d in f["configs/phi"].dims] == [
                "/configs/sweep", "/configs/replica", "/configs/x0", "/configs/x1", "/configs/x2"]
            assert [d[0].name for d in f["observables/m"].dims] == ["/observables/sweep", "/observables/replica"]
            assert f["configs/phi"].chunks == (1, 1, *shape)
            for k, per_rank in enumerate(fields):
                for item in filter(None, per_rank):
                    replica, field = item
                    assert phi[k, replica].tobytes() == field.tobytes()
    WORLD.Barrier()


@pytest.mark.mpi(min_size=2)
def test_checkpoint_written_here_restarts_on_one_rank(tmp_path_factory):
    d = _tmpdir(tmp_path_factory)
    shape = (16, 16)
    act = PhiFourAction.perturbed(2, 9, 0.1)
    topo = Topology(WORLD, shape)
    s = Sampler(topo, act, seed=9)
    s.tune(30, 0.5)
    write_checkpoint(f"{d}/ck", s, replica_values(topo, s.delta, False), 0, 0, "x", "", keep=2)
    s.sweep(20)
    final = s.gather()
    if WORLD.Get_rank() == 0:
        one = Sampler(Topology(MPI.COMM_SELF, shape), act, seed=9)
        state = load_latest(f"{d}/ck", one, print)
        assert state.sweep_count == 30 and one.delta == s.delta
        one.sweep(20)
        assert one.gather().tobytes() == final.tobytes()
    WORLD.Barrier()
