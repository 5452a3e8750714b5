"""Configuration of `pqml rbm CONFIG` (scalar-field RBM training; docs/rbm.md).

[rbm]        model ("scalar": the scalar-field RBM; or a phi^4-network preset "gaussian-gaussian",
             "gaussian-bernoulli", "bernoulli-bernoulli", "phi4-bernoulli", docs/phi4nn.md), n_hidden,
             mu2, sigma_h2, learn_mu2, init ("random" | "cholesky" | "symmetric"), init_std
[target]     kind = "free_field", shape, m2     — train from the target's correlation matrix, or
[data]       path, dataset, batch_size          — train from configurations (rows = flattened fields)
[train]      epochs, gradient ("pcd" | "exact"), n_chains, k (Gibbs steps of the PCD chains per epoch),
             method ("pcd" | "cd", phi^4 networks), on_nonpd ("error" | "backtrack", scalar RBM)
[optimizer]  as for pqml learn (docs/learning.md), [sampler] seed, [output], [checkpoint] (every = epochs)
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from .. import config as C
from ..errors import ConfigError
from ..learning.config import OptimizerConfig, _optimizer

INITS = ("random", "cholesky", "symmetric")
GRADIENTS = ("pcd", "exact")


MODELS = ("scalar", "gaussian-gaussian", "gaussian-bernoulli", "bernoulli-bernoulli", "phi4-bernoulli")
METHODS = ("pcd", "cd")
# Defaults of (train.n_chains, train.k): the scalar-field RBM's documented PCD recipe (docs/rbm.md: 512
# chains, 2 Gibbs steps per epoch, every lambda within 2 % on the paper's free fields); phi^4 networks 64, 1.
SCALAR_PCD, PHI4_PCD = (512, 2), (64, 1)


@dataclass(frozen=True)
class RBMSection:
    n_hidden: int
    mu2: float = 0.0
    model: str = "scalar"
    sigma_h2: float = 1.0
    learn_mu2: bool = False
    init: str = "random"
    init_std: float = 0.1


@dataclass(frozen=True)
class TargetSection:
    kind: str = ""
    shape: tuple = ()
    m2: float = 0.0


@dataclass(frozen=True)
class DataSection:
    path: str = ""
    dataset: str = ""
    batch_size: int = 0


@dataclass(frozen=True)
class TrainSection:
    epochs: int
    gradient: str = "pcd"
    n_chains: int = 512          # from_dict: 512 (scalar RBM) or 64 (phi^4 networks), SCALAR_PCD / PHI4_PCD
    k: int = 2                   # 2 (scalar RBM) or 1 (phi^4 networks)
    method: str = "pcd"          # phi^4 networks: persistent chains or CD-k from the batch
    on_nonpd: str = "error"      # scalar RBM: "error" or "backtrack" (undo the step, halve the rate)


@dataclass(frozen=True)
class RBMConfig:
    rbm: RBMSection
    target: TargetSection
    data: DataSection
    train: TrainSection
    optimizer: OptimizerConfig
    seed: int
    output: C.OutputConfig
    checkpoint: C.CheckpointConfig
    text: str = ""
    sha256: str = ""
    overrides: tuple = ()

    @property
    def checkpoint_dir(self) -> str:
        return self.checkpoint.dir or self.output.path + ".ckpt"

    @property
    def physics_sha256(self) -> str:
        d = {"rbm": asdict(self.rbm), "target": asdict(self.target), "data": asdict(self.data),
             "train": {k: v for k, v in asdict(self.train).items() if k != "epochs"},
             "optimizer": asdict(self.optimizer), "seed": self.seed, "save_every": self.output.save_every}
        return C.physics_hash(d)


SECTIONS = ("rbm", "target", "data", "train", "optimizer", "sampler", "output", "checkpoint")


def from_dict(d: dict, text: str = "", overrides=()) -> RBMConfig:
    C._check_keys("", d, SECTIONS)
    for s in ("rbm", "train", "sampler", "output"):
        if s not in d:
            raise ConfigError(f"config error: missing required section [{s}]")
    t = {s: C._table(s, d.get(s, {})) for s in SECTIONS}
    r = t["rbm"]
    C._check_keys("rbm", r, tuple(RBMSection.__dataclass_fields__))
    model = C._choice("rbm.model", r.get("model", "scalar"), MODELS)
    rbm = RBMSection(
        n_hidden=C._int("rbm.n_hidden", C._require("rbm", r, "n_hidden"), 1, what="a positive integer"),
        mu2=C._float("rbm.mu2", C._require("rbm", r, "mu2") if model == "scalar" else r.get("mu2", 0.0),
                     lambda x: x > 0 or model != "scalar", "a number > 0"),
        model=model,
        sigma_h2=C._float("rbm.sigma_h2", r.get("sigma_h2", 1.0), lambda x: x > 0, "a number > 0"),
        learn_mu2=C._bool("rbm.learn_mu2", r.get("learn_mu2", False)),
        init=C._choice("rbm.init", r.get("init", "random"), INITS),
        init_std=C._float("rbm.init_std", r.get("init_std", 0.1), lambda x: x >= 0, "a number >= 0"))
    if ("target" in d) == ("data" in d):
        raise ConfigError("config error: give exactly one of [target] (train from a known target) and [data]")
    target, data = TargetSection(), DataSection()
    if "target" in d:
        tt = t["target"]
        C._check_keys("target", tt, ("kind", "shape", "m2"))
        target = TargetSection(C._choice("target.kind", C._require("target", tt, "kind"), ("free_field",)),
                               C._int_list("target.shape", C._require("target", tt, "shape")),
                               C._float("target.m2", C._require("target", tt, "m2"), lambda x: x > 0, "a number > 0"))
    else:
        dd = t["data"]
        C._check_keys("data", dd, ("path", "dataset", "batch_size"))
        path = C._require("data", dd, "path")
        if not isinstance(path, str) or not path.strip():
            raise C._fail("data.path", "must be a non-empty string", path)
        data = DataSection(path, str(dd.get("dataset", "")),
                           C._int("data.batch_size", dd.get("batch_size", 64), 1, what="a positive integer"))
    tr = t["train"]
    C._check_keys("train", tr, tuple(TrainSection.__dataclass_fields__))
    chains, k = SCALAR_PCD if model == "scalar" else PHI4_PCD
    train = TrainSection(C._int("train.epochs", C._require("train", tr, "epochs"), 1, what="a positive integer"),
                         C._choice("train.gradient", tr.get("gradient", "pcd"), GRADIENTS),
                         C._int("train.n_chains", tr.get("n_chains", chains), 2, what="an integer >= 2"),
                         C._int("train.k", tr.get("k", k), 1, what="a positive integer"),
                         C._choice("train.method", tr.get("method", "pcd"), METHODS),
                         C._choice("train.on_nonpd", tr.get("on_nonpd", "error"), ("error", "backtrack")))
    if model != "scalar" and "data" not in d:
        raise ConfigError(f'config error: rbm.model = "{model}" (a phi^4 network) is trained from [data]')
    if train.gradient == "exact" and model != "scalar":
        raise ConfigError('config error: train.gradient = "exact" is for the scalar-field RBM (rbm.model = "scalar")')
    if rbm.init != "random" and "target" not in d:
        raise ConfigError(f'config error: rbm.init = "{rbm.init}" is an exact solution for a [target] kernel')
    s = t["sampler"]
    C._check_keys("sampler", s, ("seed",))
    seed = C._int("sampler.seed", C._require("sampler", s, "seed"), 0, C.SEED_MAX, "an integer in 0 .. 2^64-1")
    return RBMConfig(rbm, target, data, train, _optimizer(t["optimizer"]), seed, C._output(t["output"]),
                     C._checkpoint(t["checkpoint"]), text, hashlib.sha256(text.encode()).hexdigest(),
                     tuple(overrides))


def parse_rbm_config(text: str, source: str = "<string>", overrides=()) -> RBMConfig:
    return from_dict(C.parse_toml(text, source, overrides), text, overrides)


def load_rbm_config(path, overrides=()) -> RBMConfig:
    return parse_rbm_config(C.read_config_text(path), str(path), overrides)
