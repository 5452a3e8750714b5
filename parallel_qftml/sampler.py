"""Checkerboard Metropolis sampler of the phi^4 MRF on a domain-decomposed lattice.

One sweep = for each colour c in order: the kernel updates the sites of colour c of the local block
(kernels/metropolis.py), then the halo exchange sends the boundary sites of colour c (parallel/halo.py).
When only axis 0 is split over ranks and only nearest neighbours couple, both colours go in one
pipelined pass over memory with the same result (docs/performance.md). Random numbers depend only on (seed, replica, sweep, global site, hit), so the same seed gives
bit-identical configurations on any number of ranks and any process grid.
"""
from __future__ import annotations

import time

import numpy as np

from .errors import UserError
from .kernels.exactsum import WIDTH, new_accumulators
from .kernels import chain as kchain
from .kernels import measure as msr
from .kernels.metropolis import make_buffers, update_schedule
from .parallel.halo import HaloExchange
from .parallel.reductions import exact_global_sums, global_int_sum
from .rng import INIT, UPDATE, c3_of, fill_uniform, key_of

COUNTER_LIMIT = "sweep counter exceeds 2**32, the range of the Philox counter word"
TUNE_BLOCK = 10          # sweeps between step-size adjustments
TUNE_FRACTION = 0.8      # adjust during this fraction of the thermalisation, then freeze


class Sampler:
    """State of one replica's chain on this rank's block (the topology fixes which replica)."""

    def __init__(self, topology, action, seed: int, delta: float = 1.0, n_hits: int = 1, init: str = "random",
                 chain: int | None = None, couplings=None, proposal=None):
        """`chain` (default: the topology's replica) selects the random stream, so one rank can run
        several chains (learning/ensemble.py); `couplings` = (w, a, b, r) padded arrays to share
        instead of the action's (ghosts of w filled by the caller); `proposal` = (lo, hi) replaces the
        random walk by the uniform proposal between lo and hi (appendix B of the paper)."""
        if not 1 <= n_hits <= 255:
            raise UserError(f"sampler.n_hits must be in 1..255, got {n_hits}")
        if not delta > 0:
            raise UserError(f"sampler.delta must be > 0, got {delta}")
        self.topo = topology
        g = self.geom = topology.geometry
        self.action = action
        self.seed = int(seed)
        self.k0, self.k1 = key_of(seed)
        self.chain = topology.replica if chain is None else int(chain)
        self.c3 = c3_of(UPDATE, self.chain)
        self.delta = float(delta)
        self.n_hits = int(n_hits)
        self.nnn = action.has_nnn
        self.n_colours = g.n_colours(self.nnn)
        self.halo = HaloExchange(topology, self.nnn)
        if couplings is None:
            action.check_bounded(g.shape)           # the caller checks shared couplings (learning trainer)
            self.w, self.a, self.b, self.r = action.local_couplings(g)
            for mu in range(g.ndim):
                self.halo.exchange(self.w[mu])
        else:
            self.w, self.a, self.b, self.r = couplings
        self.lo, self.width = 0.0, 0.0
        if proposal is not None:
            lo, hi = (float(v) for v in proposal)
            if not hi > lo:
                raise UserError(f"uniform proposal needs max > min, got [{lo}, {hi}]")
            self.lo, self.width = lo, hi - lo
        self.phi = np.zeros(int(np.prod(g.padded_shape)))
        all_rows, all_gbase, _ = g.rows(0, False)      # every row holds sites of parity 0
        if init == "random":      # phi = 2 v0 - 1 (the yardstick's initial state for replica 0)
            fill_uniform(self.phi, all_rows, all_gbase, g.local_shape[-1], 0, self.k0, self.k1,
                         c3_of(INIT, self.chain), 0.0, 1.0)
        elif init != "cold":
            raise UserError(f"sampler.init must be 'random' or 'cold', got {init!r}")
        self.halo.exchange(self.phi)
        rows = [g.rows(c, self.nnn) for c in range(self.n_colours)]
        self.rows = np.array([[rows[c][k] for c in range(self.n_colours)] for k in range(3)])
        n_rows = self.rows.shape[2]
        self.colour_steps = [np.array([[c, 0, n_rows, -1]], dtype=np.int64) for c in range(self.n_colours)]
        self.bufs = make_buffers(g.local_shape[-1])
        self.nnn_off = g.nnn_offsets()
        self.nnn_fwd = self.nnn_off.reshape(-1, 4)[:, [0, 2]].ravel().copy()   # +mu+nu, +mu-nu
        self.sweep_count = 0
        self.timers = {"kernel": 0.0, "halo": 0.0}     # seconds, this rank (benchmarks read them)
        self.last_acceptance = float("nan")
        # Pipelined sweep when only nearest neighbours couple and only axis 0 is split over ranks:
        # colour 0 on axis-0 slab k, then at once colour 1 on slab k - 1 while it is in cache (one pass
        # over memory instead of two; each colour-1 update sees final colour-0 neighbours, so the result
        # is the same as colour by colour). Slabs 0 and n - 1 get colour 1 after the axis-0 halo.
        self.pipelined = not self.nnn and g.ndim >= 2 and all(p == 1 for p in g.proc_grid[1:])
        self.slab_ghosts = g.slab_ghost_pairs() if self.pipelined else (np.empty(0, np.int64),) * 2
        if self.pipelined:
            n, rps = g.local_shape[0], n_rows // g.local_shape[0]
            main = []
            for k in range(n):
                main.append([0, k * rps, (k + 1) * rps, k])
                if 1 <= k - 1 <= n - 2:
                    main.append([1, (k - 1) * rps, k * rps, k - 1])
            self.pipeline_steps = (np.array(main, dtype=np.int64),
                                   np.array([[1, k * rps, (k + 1) * rps, k] for k in sorted({0, n - 1})],
                                            dtype=np.int64))
        self.tiles = g.tile_rows()
        self.mbufs = msr.make_buffers(g.ndim, g.local_shape[-1])
        # a grid of one rank: sweeps and measurements run in fused kernels with the ghost copies inside
        self.local = all(p == 1 for p in g.proc_grid)
        if self.local:
            self._build_phases()

    def _build_phases(self):
        """The sweep's phases for kernels/chain.py: the same update steps and ghost copies, in the same
        order, as sweep() and measure() do through update_schedule and the halo exchange."""
        h, empty = self.halo, np.empty(0, np.int64)
        if self.pipelined:
            phases = [(self.pipeline_steps[c], h.local_pairs(c, (0,))) for c in (0, 1)]
            self.mghost = h.local_pairs(None)
        else:
            phases = [(self.colour_steps[c], h.local_pairs(c)) for c in range(self.n_colours)]
            self.mghost = (empty, empty)
        ptr = lambda xs: np.concatenate([[0], np.cumsum([len(x) for x in xs])]).astype(np.int64)  # noqa: E731
        self.steps = np.ascontiguousarray(np.concatenate([p[0] for p in phases]), dtype=np.int64)
        self.step_ptr = ptr([p[0] for p in phases])
        self.gdst = np.concatenate([p[1][0] for p in phases])
        self.gsrc = np.concatenate([p[1][1] for p in phases])
        self.gptr = ptr([p[1][0] for p in phases])
        self.macc = new_accumulators(msr.N_PIECES)
        self.msums = np.empty(msr.N_PIECES)
        self.accepted = np.zeros(4096, dtype=np.int64)

    def _kernel_args(self):
        g = self.geom
        return (self.phi, self.w, self.a, self.b, self.r, self.action.w_nnn, g.strides, self.nnn_off, self.rows,
                g.local_shape[-1])

    def _chain_tail(self):
        return (self.k0, self.k1, self.c3, self.delta, self.n_hits, *self.bufs, *self.slab_ghosts, self.lo,
                self.width, self.steps, self.step_ptr, self.gdst, self.gsrc, self.gptr)

    def _check_counter(self, n: int) -> int:
        """How many of n sweeps the 32-bit Philox counter word allows from here."""
        return min(n, max(0, 2 ** 32 - self.sweep_count))

    def interior(self) -> np.ndarray:
        """Writable view of this block's sites (local_shape)."""
        return self.phi.reshape(self.geom.padded_shape)[self.geom.interior]

    def sweep(self, n: int = 1) -> float:
        """n sweeps; returns this replica's acceptance over them (identical on every layout)."""
        if self.local:
            return self._sweep_local(n)
        total = global_int_sum(self._sweep_steps(n), self.topo.grid_comm)
        self.last_acceptance = total / (n * self.n_hits * self.geom.volume) if n else float("nan")
        return self.last_acceptance

    def _sweep_steps(self, n: int) -> int:
        """n sweeps through update_schedule and the halo exchange; returns this block's accepted count."""
        acc = 0
        for _ in range(n):
            t = self.sweep_count
            if t >= 2 ** 32:
                raise UserError(COUNTER_LIMIT)
            if self.pipelined:
                acc += self._update(self.pipeline_steps[0], t, colour=0, axes=(0,))
                acc += self._update(self.pipeline_steps[1], t, colour=1, axes=(0,))
            else:
                for c in range(self.n_colours):
                    acc += self._update(self.colour_steps[c], t, colour=c)
            self.sweep_count += 1
        return acc

    def _sweep_local(self, n: int) -> float:
        acc, done, t0 = 0, 0, time.perf_counter()
        ok = self._check_counter(n)
        while done < ok:
            k = min(ok - done, self.accepted.shape[0])
            kchain.sweeps(*self._kernel_args(), self.sweep_count, k, *self._chain_tail(), self.accepted)
            acc += int(self.accepted[:k].sum())
            self.sweep_count += k
            done += k
        self.timers["kernel"] += time.perf_counter() - t0
        if ok < n:
            raise UserError(COUNTER_LIMIT)
        self.last_acceptance = acc / (n * self.n_hits * self.geom.volume) if n else float("nan")
        return self.last_acceptance

    def measured(self, n_meas: int, every: int) -> np.ndarray:
        """n_meas times `every` sweeps and a measurement: rows [n_meas, len(OBS_COLUMNS)] in the
        column order kernels/chain.OBS_COLUMNS, each the values of measure() after that sweep() (on a
        one-rank grid in one fused kernel call, bit-identical)."""
        out = np.empty((n_meas, len(kchain.OBS_COLUMNS)))
        if not self.local:
            return self._measured_distributed(n_meas, every, out)
        if self._check_counter(n_meas * every) < n_meas * every or every > self.accepted.shape[0]:
            for k in range(n_meas):
                self.sweep(every)
                m = self.measure()
                out[k] = [m[c] for c in kchain.OBS_COLUMNS]
            return out
        g, t0 = self.geom, time.perf_counter()
        kchain.measured_sweeps(*self._kernel_args(), self.sweep_count, n_meas, every, *self._chain_tail(),
                               self.nnn_fwd, self.tiles, *self.mghost, self.macc, *self.mbufs, self.msums,
                               g.volume, self.accepted, out)
        self.timers["kernel"] += time.perf_counter() - t0
        self.sweep_count += n_meas * every
        if n_meas:
            self.last_acceptance = float(out[-1, -1])
        return out

    def _measured_distributed(self, n_meas: int, every: int, out: np.ndarray) -> np.ndarray:
        """measured() on a grid of several ranks: the sweeps and local pieces of all n_meas measurements,
        then one all-reduce of every accumulator and accepted count of the block (instead of two small
        reductions per measurement); the integer sums, hence all bits, are those of sweep() + measure()."""
        if self.sweep_count + n_meas * every > 2 ** 32:
            raise UserError(COUNTER_LIMIT)
        nP, W = msr.N_PIECES, WIDTH
        buf = np.zeros(n_meas * nP * W + n_meas, dtype=np.int64)
        acc = buf[:n_meas * nP * W].reshape(n_meas * nP, W)
        accepted = buf[n_meas * nP * W:]
        for k in range(n_meas):
            accepted[k] = self._sweep_steps(every)
            self._local_pieces(acc[k * nP:(k + 1) * nP])
        sums = exact_global_sums(acc, self.topo.grid_comm, buffer=buf)
        denom = every * self.n_hits * self.geom.volume
        for k in range(n_meas):
            m = self._observables(sums[k * nP:(k + 1) * nP], int(accepted[k]) / denom)
            out[k] = [m[c] for c in kchain.OBS_COLUMNS]
        if n_meas:
            self.last_acceptance = float(out[-1, -1])
        return out

    def _local_pieces(self, acc) -> None:
        """This block's exact pieces into acc[N_PIECES, WIDTH] (zeroed by the caller)."""
        g = self.geom
        if self.pipelined:       # that sweep leaves edge and corner ghosts stale; the pieces read them
            self.halo.exchange(self.phi)
        msr.local_pieces(self.phi, self.w, self.a, self.b, self.r, self.action.w_nnn, g.strides,
                         self.nnn_fwd, self.tiles, g.local_shape[-1], acc, *self.mbufs)

    def _update(self, steps, t, colour, axes=None) -> int:
        """Kernel steps, then the halo exchange of the colour they finished; returns accepted count."""
        g = self.geom
        t0 = time.perf_counter()
        acc = update_schedule(self.phi, self.w, self.a, self.b, self.r, self.action.w_nnn, g.strides,
                              self.nnn_off, self.rows, steps, g.local_shape[-1], t, self.k0, self.k1,
                              self.c3, self.delta, self.n_hits, *self.bufs, *self.slab_ghosts,
                              self.lo, self.width)
        t1 = time.perf_counter()
        self.halo.exchange(self.phi, colour, axes)
        self.timers["kernel"] += t1 - t0
        self.timers["halo"] += time.perf_counter() - t1
        return acc

    def thermalise_block(self, n_therm: int, target_acceptance: float = 0.5, tune: bool = True) -> float:
        """Thermalise up to the next multiple of 10 sweeps (or n_therm). A block that ends within the
        first 80 % of n_therm adjusts delta by clip(sqrt(acceptance / target), 0.5, 2); after that
        delta is frozen. Depends only on sweep_count, so a run resumed at a block boundary continues
        exactly. Returns delta."""
        s = self.sweep_count
        end = min(n_therm, (s // TUNE_BLOCK + 1) * TUNE_BLOCK)
        acc = self.sweep(end - s)
        n_tune = int(TUNE_FRACTION * n_therm) // TUNE_BLOCK
        if tune and end - s == TUNE_BLOCK and end <= n_tune * TUNE_BLOCK:
            self.delta *= min(2.0, max(0.5, (max(acc, 1e-3) / target_acceptance) ** 0.5))
        return self.delta

    def tune(self, n_sweeps: int, target_acceptance: float = 0.5) -> float:
        """Thermalise from sweep 0 to n_sweeps while tuning delta (thermalise_block); returns delta."""
        while self.sweep_count < n_sweeps:
            self.thermalise_block(n_sweeps, target_acceptance)
        return self.delta

    def measure(self) -> dict:
        """Global action pieces (exact sums, bit-identical on every layout), m, |m| and acceptance."""
        g = self.geom
        if self.local:
            out = np.empty(len(kchain.OBS_COLUMNS))
            kchain.measure(self.phi, self.w, self.a, self.b, self.r, self.action.w_nnn, g.strides, self.nnn_fwd,
                           self.tiles, g.local_shape[-1], *self.mghost, self.macc, *self.mbufs, self.msums,
                           g.volume, out)
            res = dict(zip(kchain.OBS_COLUMNS[:-1], map(float, out[:-1])))
            res["acceptance"] = self.last_acceptance
            return res
        acc = new_accumulators(msr.N_PIECES)
        self._local_pieces(acc)
        return self._observables(exact_global_sums(acc, self.topo.grid_comm), self.last_acceptance)

    def _observables(self, s, acceptance) -> dict:
        """measure()'s dict from the global sums s[N_PIECES] of the pieces."""
        V = self.geom.volume
        return {"action": s[msr.ACTION], "nn": s[msr.NN], "nnn": s[msr.NNN], "phi2": s[msr.PHI2],
                "phi4": s[msr.PHI4], "phi1": s[msr.PHI1], "m": s[msr.PHI1] / V,
                "abs_m": abs(s[msr.PHI1]) / V, "acceptance": acceptance}

    def gather(self):
        """The global field on the grid root (None elsewhere)."""
        comm = self.topo.grid_comm
        blocks = comm.gather(np.ascontiguousarray(self.interior()), root=0)
        if comm.Get_rank():
            return None
        out = np.empty(self.geom.shape)
        for rank, blk in enumerate(blocks):
            c = comm.Get_coords(rank)
            out[tuple(slice(ci * n, (ci + 1) * n) for ci, n in zip(c, self.geom.local_shape))] = blk
        return out


def stack_fields(samplers) -> np.ndarray:
    """The fields of `samplers` (same geometry) as the rows of one array, each sampler's phi becoming a
    view of its row (values unchanged), so that a kernel can update all of them in one call; None if
    there are none."""
    if not samplers:
        return None
    fields = np.stack([s.phi for s in samplers])
    for k, s in enumerate(samplers):
        s.phi = fields[k]
    return fields

