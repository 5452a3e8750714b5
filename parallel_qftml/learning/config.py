"""Learning configuration (``pqml learn CONFIG``): TOML -> validated, frozen dataclasses.

Sections [lattice], [parallel], [output], [checkpoint] are those of a sampling run (config.py; here
output.save_every and checkpoint.every count epochs). The keys are documented in docs/learning.md.
"""
from __future__ import annotations

import hashlib
import types
from dataclasses import asdict, dataclass, field
from typing import Mapping

from .. import config as C
from ..errors import ConfigError
from .optimizers import OPTIMIZERS, SCHEDULES

MODES = ("target", "data")
PARAMS = ("w", "a", "b", "r")
DATA_METHODS = ("pcd", "cd")
PROPOSALS = ("walk", "uniform")
KL_ESTIMATORS = ("exp", "ti")


@dataclass(frozen=True)
class ChainConfig:
    seed: int
    delta: float = 1.0
    n_hits: int = 1
    init: str = "random"
    n_therm: int = 100
    target_acceptance: float = 0.5
    tune: bool = True


@dataclass(frozen=True)
class LearnSection:
    mode: str
    epochs: int
    n_chains: int = 1
    samples_per_epoch: int = 50        # target mode: measurements per chain per epoch
    sweeps_per_sample: int = 1         # sweeps before each measurement (target) / k of CD-k, PCD (data)
    params: tuple = ("w", "a", "b")
    b_min: float = 0.0                 # b is kept >= b_min after each update (the action stays bounded)
    final_kl: str = "exp"              # "ti": KL of the final S by thermodynamic integration at the end
    n_bins: int = 20                   # jackknife blocks of the KL estimate


@dataclass(frozen=True)
class TIConfig:
    """[ti]: the thermodynamic integrations of [reference] estimator = "ti" and learn.final_kl = "ti"
    (learning/thermo.py): chains at t = 0 and the 2 * nodes + 1 Gauss-Kronrod nodes, `samples` measurements each."""
    nodes: int = 7                     # n of the n-point Gauss rule inside the (2n + 1)-point Kronrod rule
    samples: int = 5000
    sweeps_per_sample: int = 1
    n_therm: int = 500


@dataclass(frozen=True)
class DataConfig:
    path: str = ""
    dataset: str = ""                  # HDF5 dataset ("" -> /configs/phi, the sampler's configurations)
    batch_size: int = 1
    method: str = "pcd"
    proposal: str = "walk"


@dataclass(frozen=True)
class InitConfig:
    w_mean: float = 0.0
    w_std: float = 0.1
    a_mean: float = 1.0
    a_std: float = 0.1
    b_mean: float = 0.2
    b_std: float = 0.02
    r_mean: float = 0.0
    r_std: float = 0.0


@dataclass(frozen=True)
class OptimizerConfig:
    kind: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    schedule: str = "constant"
    decay: float = 1.0
    decay_every: int = 1
    clip_value: float = 0.0            # 0: off; else each gradient element is clipped to [-v, v]
    clip_norm: float = 0.0             # 0: off; else the gradient is scaled to global L2 norm <= v


@dataclass(frozen=True)
class LearnConfig:
    lattice: C.LatticeConfig
    parallel: C.ParallelConfig
    learn: LearnSection
    chains: ChainConfig
    optimizer: OptimizerConfig
    init: InitConfig
    output: C.OutputConfig
    checkpoint: C.CheckpointConfig
    target: Mapping[str, float] = field(default_factory=dict, hash=False)
    reference: Mapping[str, float] | None = field(default=None, hash=False)
    data: DataConfig = DataConfig()
    text: str = ""
    sha256: str = ""
    overrides: tuple = ()
    reference_estimator: str = "exp"            # "ti": KL(reference || target) once by thermodynamic integration
    ti: TIConfig = TIConfig()                    # these three are not in physics_sha256: no effect on training

    @property
    def checkpoint_dir(self) -> str:
        return self.checkpoint.dir or self.output.path + ".ckpt"

    @property
    def physics_sha256(self) -> str:
        """Everything that determines the couplings epoch by epoch (not `epochs`, paths, the number of
        ranks or replica groups: the result does not depend on them)."""
        d = {"shape": self.lattice.shape,
             "learn": {k: v for k, v in asdict(self.learn).items() if k not in ("epochs", "final_kl")},
             "chains": asdict(self.chains), "optimizer": asdict(self.optimizer), "init": asdict(self.init), "target": dict(self.target),
             "reference": dict(self.reference) if self.reference is not None else None,
             "data": asdict(self.data), "save_every": self.output.save_every}
        return C.physics_hash(d)


def _g(key: str, t, extra: tuple = ()) -> Mapping[str, float]:
    """[target] / [reference]: g = {nn = .., phi2 = .., phi4 = .., nnn = .., phi = ..} (eqs. 14/15)."""
    C._check_keys(key, C._table(key, t), ("g", *extra))
    key = f"{key}.g"
    g = C._table(key, C._require(key[:-2], t, "g"))
    C._check_keys(key, g, C.TARGET_TERMS)
    gv = {k: C._float(f"{key}.{k}", v) for k, v in g.items()}
    if gv.pop("i_phi2", 0.0) != 0.0:
        raise ConfigError(f"config error: {key}.i_phi2: a complex target cannot be learned (p would have to "
                          f"match a complex weight); learn the real part and reach the complex action by "
                          f"reweighting (analysis/)")
    if gv.get("phi4", 0.0) < 0:
        raise C._fail(f"{key}.phi4", "must be >= 0 (a negative quartic coupling is unbounded below)", gv["phi4"])
    if not any(gv.values()):
        raise ConfigError(f"config error: {key} must set at least one nonzero coupling")
    return types.MappingProxyType(gv)


def _ti(t: dict) -> TIConfig:
    """[ti] (docs/learning.md, "Thermodynamic integration")."""
    C._check_keys("ti", t, tuple(TIConfig.__dataclass_fields__))
    d = TIConfig()
    pos = lambda k, lo: C._int(f"ti.{k}", t.get(k, getattr(d, k)), lo, what=f"an integer >= {lo}")  # noqa: E731
    return TIConfig(C._int("ti.nodes", t.get("nodes", d.nodes), 1, 15, what="an integer in 1..15"),
                    pos("samples", 20), pos("sweeps_per_sample", 1), pos("n_therm", 0))


def _learn(t: dict) -> LearnSection:
    C._check_keys("learn", t, tuple(LearnSection.__dataclass_fields__))
    params = t.get("params", ["w", "a", "b"])
    if (not isinstance(params, list) or not params or len(set(params)) != len(params)
            or any(p not in PARAMS for p in params)):
        raise C._fail("learn.params", f"must be a non-empty list of distinct names from {list(PARAMS)}", params)
    pos = lambda k, d: C._int(f"learn.{k}", t.get(k, d), 1, what="a positive integer")  # noqa: E731
    return LearnSection(
        mode=C._choice("learn.mode", C._require("learn", t, "mode"), MODES),
        epochs=C._int("learn.epochs", C._require("learn", t, "epochs"), 1, what="a positive integer"),
        n_chains=pos("n_chains", 1), samples_per_epoch=pos("samples_per_epoch", 50),
        sweeps_per_sample=pos("sweeps_per_sample", 1), params=tuple(sorted(params, key=PARAMS.index)),
        b_min=C._float("learn.b_min", t.get("b_min", 0.0), lambda x: x >= 0, "a number >= 0"),
        n_bins=C._int("learn.n_bins", t.get("n_bins", 20), 2, what="an integer >= 2"),
        final_kl=C._choice("learn.final_kl", t.get("final_kl", "exp"), KL_ESTIMATORS))


def _chains(t: dict) -> ChainConfig:
    keys = tuple(ChainConfig.__dataclass_fields__)
    C._check_keys("sampler", t, keys)
    s = C._sampler({**t, "n_sweeps": 1})
    return ChainConfig(**{k: getattr(s, k) for k in keys})


def _data(t: dict) -> DataConfig:
    C._check_keys("data", t, tuple(DataConfig.__dataclass_fields__))
    path = C._require("data", t, "path")
    if not isinstance(path, str) or not path.strip():
        raise C._fail("data.path", "must be a non-empty string", path)
    ds = t.get("dataset", "")
    if not isinstance(ds, str):
        raise C._fail("data.dataset", "must be a string", ds)
    return DataConfig(path, ds, C._int("data.batch_size", t.get("batch_size", 1), 1, what="a positive integer"),
                      C._choice("data.method", t.get("method", "pcd"), DATA_METHODS),
                      C._choice("data.proposal", t.get("proposal", "walk"), PROPOSALS))


def _init(t: dict) -> InitConfig:
    C._check_keys("init", t, tuple(InitConfig.__dataclass_fields__))
    vals = {}
    for k, f in InitConfig.__dataclass_fields__.items():
        ok = (lambda x: x >= 0) if k.endswith("_std") else (lambda x: True)
        vals[k] = C._float(f"init.{k}", t.get(k, f.default), ok, "a number >= 0" if k.endswith("_std") else "a number")
    return InitConfig(**vals)


def _optimizer(t: dict) -> OptimizerConfig:
    C._check_keys("optimizer", t, tuple(OptimizerConfig.__dataclass_fields__))
    d = OptimizerConfig()
    pos = lambda k: C._float(f"optimizer.{k}", t.get(k, getattr(d, k)), lambda x: x > 0, "a number > 0")  # noqa
    nonneg = lambda k: C._float(f"optimizer.{k}", t.get(k, getattr(d, k)), lambda x: x >= 0, "a number >= 0")  # noqa
    unit = lambda k: C._float(f"optimizer.{k}", t.get(k, getattr(d, k)), lambda x: 0 <= x < 1, "a number in [0, 1)")  # noqa
    return OptimizerConfig(
        kind=C._choice("optimizer.kind", t.get("kind", d.kind), OPTIMIZERS), lr=pos("lr"),
        momentum=unit("momentum"), beta1=unit("beta1"), beta2=unit("beta2"), eps=pos("eps"),
        schedule=C._choice("optimizer.schedule", t.get("schedule", d.schedule), SCHEDULES),
        decay=pos("decay"), decay_every=C._int("optimizer.decay_every", t.get("decay_every", 1), 1,
                                               what="a positive integer"),
        clip_value=nonneg("clip_value"), clip_norm=nonneg("clip_norm"))


SECTIONS = ("lattice", "parallel", "learn", "sampler", "optimizer", "init", "target", "reference", "data",
            "output", "checkpoint", "ti")


def from_dict(d: dict, text: str = "", overrides=()) -> LearnConfig:
    C._check_keys("", d, SECTIONS)
    for s in ("lattice", "learn", "sampler", "output"):
        if s not in d:
            raise ConfigError(f"config error: missing required section [{s}]")
    t = {s: C._table(s, d.get(s, {})) for s in SECTIONS if s not in ("target", "reference")}
    lattice = C._lattice(t["lattice"])
    learn = _learn(t["learn"])
    parallel = C._parallel(t["parallel"])
    target = reference = None
    ref_estimator = "exp"
    data = DataConfig()
    if learn.mode == "target":
        if "target" not in d:
            raise ConfigError('config error: learn.mode = "target" needs a [target] table of couplings g')
        if "data" in d:
            raise ConfigError('config error: [data] belongs to learn.mode = "data", not "target"')
        target = _g("target", d["target"])
        if "reference" in d:
            reference = _g("reference", d["reference"], ("estimator",))
            ref_estimator = C._choice("reference.estimator", d["reference"].get("estimator", "exp"), KL_ESTIMATORS)
    else:
        if "data" not in d:
            raise ConfigError('config error: learn.mode = "data" needs a [data] section with path')
        for s in ("target", "reference"):
            if s in d:
                raise ConfigError(f'config error: [{s}] belongs to learn.mode = "target", not "data"')
        data = _data(t["data"])
        if learn.final_kl != "exp":
            raise ConfigError('config error: learn.final_kl = "ti" belongs to learn.mode = "target" (data mode has '
                              'no target action to integrate to)')
        if data.method == "cd" and learn.n_chains != data.batch_size:
            learn = LearnSection(**{**asdict(learn), "n_chains": data.batch_size})
    if learn.n_chains % parallel.n_replicas:
        n = "data.batch_size (CD chains)" if data.method == "cd" and learn.mode == "data" else "learn.n_chains"
        raise ConfigError(f"config error: {n} = {learn.n_chains} must be a multiple of parallel.n_replicas = "
                          f"{parallel.n_replicas} (each replica group runs the same number of chains)")
    return LearnConfig(lattice, parallel, learn, _chains(t["sampler"]), _optimizer(t["optimizer"]),
                       _init(t["init"]), C._output(t["output"]), C._checkpoint(t["checkpoint"]),
                       target or {}, reference, data, text, hashlib.sha256(text.encode()).hexdigest(),
                       tuple(overrides), ref_estimator, _ti(t["ti"]))


def parse_learn_config(text: str, source: str = "<string>", overrides=()) -> LearnConfig:
    return from_dict(C.parse_toml(text, source, overrides), text, overrides)


def load_learn_config(path, overrides=()) -> LearnConfig:
    return parse_learn_config(C.read_config_text(path), str(path), overrides)
