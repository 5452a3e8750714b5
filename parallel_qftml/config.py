"""Run configuration: TOML -> validated, frozen dataclasses.

Every problem raises ``ConfigError`` with a one-line message naming the key, e.g.
``config error: sampler.n_sweeps must be a positive integer, got -3``. The keys, types, defaults
and meanings are documented in docs/config.md.
"""
from __future__ import annotations

import hashlib
import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import ConfigError, UserError
from .models.action import TARGET_TERMS      # the model's vocabulary (models/action.py)

ACTION_KINDS = ("mrf", "lattice", "target", "file")
ACTION_KEYS = {
    "mrf": ("w", "a", "b", "r", "w_nnn", "spread"),
    "lattice": ("kappa", "mu2", "lam"),
    "target": ("g",),
    "file": ("path",),
}
INIT_KINDS = ("random", "cold")
SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class LatticeConfig:
    shape: tuple[int, ...]
    proc_grid: tuple[int, ...] | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class ParallelConfig:
    n_replicas: int = 1


@dataclass(frozen=True)
class ActionConfig:
    kind: str
    # kind = "mrf"
    w: float | tuple[float, ...] = 1.0
    a: float | None = None
    b: float | None = None
    r: float = 0.0
    w_nnn: float = 0.0
    spread: float = 0.0
    # kind = "lattice"
    kappa: float | None = None
    mu2: float | None = None
    lam: float | None = None
    # kind = "target": coupling name -> g_k
    g: Mapping[str, float] = field(default_factory=dict, hash=False)
    # kind = "file": an HDF5 file with /couplings (the output of pqml learn or pqml sample)
    path: str = ""


@dataclass(frozen=True)
class SamplerConfig:
    seed: int
    n_sweeps: int
    delta: float = 1.0
    n_hits: int = 1
    init: str = "random"
    n_therm: int = 100
    target_acceptance: float = 0.5
    tune: bool = True
    measure_every: int = 1


@dataclass(frozen=True)
class OutputConfig:
    path: str
    overwrite: bool = False
    plot: bool = False
    progress: bool = True
    save_every: int = 0


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 0          # sweeps between checkpoints after thermalisation; 0: only at the end and on signals
    keep: int = 2
    dir: str = ""           # "" -> output.path + ".ckpt"


@dataclass(frozen=True)
class RunConfig:
    lattice: LatticeConfig
    parallel: ParallelConfig
    action: ActionConfig
    sampler: SamplerConfig
    output: OutputConfig
    checkpoint: CheckpointConfig = CheckpointConfig()
    text: str = ""
    sha256: str = ""
    overrides: tuple[str, ...] = ()

    @property
    def checkpoint_dir(self) -> str:
        return self.checkpoint.dir or self.output.path + ".ckpt"

    @property
    def physics_sha256(self) -> str:
        """Hash of everything that determines the chain and its output series: a resumed run must
        match it (n_sweeps may grow; lattice.proc_grid, the number of ranks and paths may change)."""
        from dataclasses import asdict
        d = {"shape": self.lattice.shape, "n_replicas": self.parallel.n_replicas,
             "action": {f: (dict(getattr(self.action, f)) if f == "g" else getattr(self.action, f))
                        for f in self.action.__dataclass_fields__},
             "sampler": {k: v for k, v in asdict(self.sampler).items() if k != "n_sweeps"},
             "save_every": self.output.save_every}
        return physics_hash(d)

    def to_action(self):
        """The ``PhiFourAction`` described by ``[action]`` (perturbed couplings use sampler.seed); a
        ConfigError (UserError for kind = "file", naming the file) if it is unbounded below."""
        act = self._action_unchecked()
        try:
            act.check_bounded(self.lattice.shape)   # remembered: the Sampler does not check again
        except UserError as e:
            if self.action.kind == "file":
                raise UserError(f"{self.action.path!r}: {e}") from None
            raise ConfigError(f"config error: [action] kind = \"{self.action.kind}\": {e}") from None
        return act

    def _action_unchecked(self):
        from .models.action import PhiFourAction

        a, ndim = self.action, self.lattice.ndim
        if a.kind == "mrf":
            if a.spread > 0:
                return PhiFourAction.perturbed(ndim, self.sampler.seed, a.spread,
                                               w=a.w, a=a.a, b=a.b, r=a.r, w_nnn=a.w_nnn)
            return PhiFourAction.homogeneous(ndim, w=a.w, a=a.a, b=a.b, r=a.r, w_nnn=a.w_nnn)
        if a.kind == "lattice":
            return PhiFourAction.from_lattice(ndim, a.kappa, a.mu2, a.lam)
        if a.kind == "file":
            from .io.couplings import read_couplings
            w, site, w_nnn = read_couplings(a.path, self.lattice.shape)
            return PhiFourAction.inhomogeneous(w, site["a"], site["b"], site["r"], w_nnn)
        return PhiFourAction.from_target(ndim, dict(a.g))


def physics_hash(d: dict) -> str:
    """SHA-256 of the JSON of `d` (sorted keys): the physics hash of every kind of run."""
    import json
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()


# ----------------------------------------------------------------------------- checkers

def _fail(key: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"config error: {key} {what}, got {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    return str(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(key: str, v: Any, lo: int | None = None, hi: int | None = None, what: str = "an integer") -> int:
    if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _fail(key, f"must be {what}", v)
    return int(v)


def _float(key: str, v: Any, ok=lambda x: True, what: str = "a number") -> float:
    if not (_is_int(v) or isinstance(v, float)) or not math.isfinite(v) or not ok(float(v)):
        raise _fail(key, f"must be {what}", v)
    return float(v)


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(key, "must be true or false", v)
    return v


def _choice(key: str, v: Any, choices: Sequence[str]) -> str:
    if v not in choices or not isinstance(v, str):
        raise _fail(key, "must be one of " + ", ".join(f'"{c}"' for c in choices), v)
    return v


def _table(key: str, v: Any) -> dict:
    if not isinstance(v, dict):
        raise _fail(key, "must be a table", v)
    return v


def _check_keys(prefix: str, table: dict, allowed: Sequence[str], hint: Mapping[str, str] = {}) -> None:
    for k in table:
        if k not in allowed:
            where = f"{prefix}.{k}" if prefix else k
            extra = f" ({hint[k]})" if k in hint else f"; allowed: {', '.join(allowed)}"
            raise ConfigError(f"config error: unknown key {where}{extra}")


def _require(prefix: str, table: dict, key: str) -> Any:
    if key not in table:
        raise ConfigError(f"config error: missing required key {prefix}.{key}")
    return table[key]


def _int_list(key: str, v: Any, n: int | None = None) -> tuple[int, ...]:
    what = f"a list of {n} positive integers" if n else "a list of 1 to 4 positive integers"
    if (not isinstance(v, list) or not all(_is_int(x) and x > 0 for x in v)
            or (n is not None and len(v) != n) or (n is None and not 1 <= len(v) <= 4)):
        raise _fail(key, f"must be {what}", v)
    return tuple(v)


# ----------------------------------------------------------------------------- sections

def _lattice(t: dict) -> LatticeConfig:
    _check_keys("lattice", t, ("shape", "proc_grid"))
    shape = _int_list("lattice.shape", _require("lattice", t, "shape"))
    grid = _int_list("lattice.proc_grid", t["proc_grid"], len(shape)) if "proc_grid" in t else None
    return LatticeConfig(shape, grid)


def _parallel(t: dict) -> ParallelConfig:
    _check_keys("parallel", t, ("n_replicas",))
    return ParallelConfig(_int("parallel.n_replicas", t.get("n_replicas", 1), 1, what="a positive integer"))


def _action(t: dict, ndim: int) -> ActionConfig:
    kind = _choice("action.kind", _require("action", t, "kind"), ACTION_KINDS)
    allowed = ("kind",) + ACTION_KEYS[kind]
    hint = {k: f'belongs to action.kind = "{o}", not "{kind}"' for o in ACTION_KINDS if o != kind
            for k in ACTION_KEYS[o] if k not in allowed}
    _check_keys("action", t, allowed, hint)
    if kind == "mrf":
        w = t.get("w", 1.0)
        if isinstance(w, list):
            if len(w) != ndim:
                raise _fail("action.w", f"must be a number or a list of {ndim} numbers (one per axis)", w)
            w = tuple(_float(f"action.w[{i}]", x) for i, x in enumerate(w))
        else:
            w = _float("action.w", w, what=f"a number or a list of {ndim} numbers (one per axis)")
        return ActionConfig(
            kind, w=w,
            a=_float("action.a", _require("action", t, "a")),
            b=_float("action.b", _require("action", t, "b"), lambda x: x >= 0,
                     "a number >= 0 (a negative phi^4 coupling is unbounded below)"),
            r=_float("action.r", t.get("r", 0.0)),
            w_nnn=_float("action.w_nnn", t.get("w_nnn", 0.0)),
            spread=_float("action.spread", t.get("spread", 0.0), lambda x: x >= 0, "a number >= 0"))
    if kind == "lattice":
        return ActionConfig(
            kind,
            kappa=_float("action.kappa", _require("action", t, "kappa")),
            mu2=_float("action.mu2", _require("action", t, "mu2")),
            lam=_float("action.lam", _require("action", t, "lam"), lambda x: x >= 0,
                       "a number >= 0 (a negative quartic coupling is unbounded below)"))
    if kind == "file":
        path = _require("action", t, "path")
        if not isinstance(path, str) or not path.strip():
            raise _fail("action.path", "must be a non-empty string", path)
        return ActionConfig(kind, path=path)
    g = _table("action.g", _require("action", t, "g"))
    _check_keys("action.g", g, TARGET_TERMS)
    gv = {k: _float(f"action.g.{k}", v) for k, v in g.items()}
    if gv.get("i_phi2", 0.0) != 0.0:
        raise ConfigError("config error: a complex target (action.g.i_phi2) cannot be sampled; "
                          "it is reached by reweighting")
    gv.pop("i_phi2", None)
    if gv.get("phi4", 0.0) < 0:
        raise _fail("action.g.phi4", "must be >= 0 (a negative quartic coupling is unbounded below)",
                    gv["phi4"])
    if not any(gv.values()):
        raise ConfigError("config error: action.g must set at least one nonzero coupling "
                          f"({', '.join(TARGET_TERMS[:-1])})")
    return ActionConfig(kind, g=types.MappingProxyType(gv))


def _sampler(t: dict) -> SamplerConfig:
    keys = ("seed", "delta", "n_hits", "init", "n_therm", "target_acceptance", "tune", "n_sweeps",
            "measure_every")
    _check_keys("sampler", t, keys)
    return SamplerConfig(
        seed=_int("sampler.seed", _require("sampler", t, "seed"), 0, SEED_MAX,
                  "an integer in 0 .. 2^64-1"),
        n_sweeps=_int("sampler.n_sweeps", _require("sampler", t, "n_sweeps"), 1, what="a positive integer"),
        delta=_float("sampler.delta", t.get("delta", 1.0), lambda x: x > 0, "a number > 0"),
        n_hits=_int("sampler.n_hits", t.get("n_hits", 1), 1, 255, "an integer in 1 .. 255"),
        init=_choice("sampler.init", t.get("init", "random"), INIT_KINDS),
        n_therm=_int("sampler.n_therm", t.get("n_therm", 100), 0, what="an integer >= 0"),
        target_acceptance=_float("sampler.target_acceptance", t.get("target_acceptance", 0.5),
                                 lambda x: 0 < x < 1, "a number in (0, 1)"),
        tune=_bool("sampler.tune", t.get("tune", True)),
        measure_every=_int("sampler.measure_every", t.get("measure_every", 1), 1,
                           what="a positive integer"))


def _output(t: dict) -> OutputConfig:
    _check_keys("output", t, ("path", "overwrite", "plot", "progress", "save_every"))
    path = _require("output", t, "path")
    if not isinstance(path, str) or not path.strip():
        raise _fail("output.path", "must be a non-empty string", path)
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise _fail("output.path", "must not contain control characters (newline, tab, ...)", path)
    return OutputConfig(path, _bool("output.overwrite", t.get("overwrite", False)),
                        _bool("output.plot", t.get("plot", False)),
                        _bool("output.progress", t.get("progress", True)),
                        _int("output.save_every", t.get("save_every", 0), 0, what="an integer >= 0"))


def _checkpoint(t: dict) -> CheckpointConfig:
    _check_keys("checkpoint", t, ("every", "keep", "dir"))
    d = t.get("dir", "")
    if not isinstance(d, str):
        raise _fail("checkpoint.dir", "must be a string", d)
    return CheckpointConfig(_int("checkpoint.every", t.get("every", 0), 0, what="an integer >= 0"),
                            _int("checkpoint.keep", t.get("keep", 2), 1, what="a positive integer"), d)


SECTIONS = ("lattice", "parallel", "action", "sampler", "output", "checkpoint")
REQUIRED_SECTIONS = ("lattice", "action", "sampler", "output")


def from_dict(d: dict, text: str = "", overrides: Sequence[str] = ()) -> RunConfig:
    """Validate a parsed TOML document."""
    _check_keys("", d, SECTIONS)
    for s in REQUIRED_SECTIONS:
        if s not in d:
            raise ConfigError(f"config error: missing required section [{s}]")
    t = {s: _table(s, d.get(s, {})) for s in SECTIONS}
    lattice = _lattice(t["lattice"])
    sampler, output, checkpoint = _sampler(t["sampler"]), _output(t["output"]), _checkpoint(t["checkpoint"])
    if sampler.measure_every > sampler.n_sweeps:
        raise _fail("sampler.measure_every", f"must not exceed sampler.n_sweeps = {sampler.n_sweeps} (the run "
                    f"would measure nothing)", sampler.measure_every)
    for key, v in (("output.save_every", output.save_every), ("checkpoint.every", checkpoint.every)):
        if v % sampler.measure_every:
            raise _fail(key, f"must be a multiple of sampler.measure_every = {sampler.measure_every}", v)
    return RunConfig(lattice, _parallel(t["parallel"]), _action(t["action"], lattice.ndim),
                     sampler, output, checkpoint, text=text,
                     sha256=hashlib.sha256(text.encode()).hexdigest(), overrides=tuple(overrides))


def apply_override(d: dict, assignment: str) -> None:
    """Apply ``section.key=value`` (value in TOML syntax; a bare word is taken as a string)."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"config error: --set expects section.key=value, got {assignment!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config error: --set {key}: {p} is not a table")
    node[parts[-1]] = value


def parse_toml(text: str, source: str = "<string>", overrides: Sequence[str] = ()) -> dict:
    """TOML text -> dict with the ``section.key=value`` overrides (``--set``) applied."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config error: {source}: invalid TOML: {e}") from None
    for o in overrides:
        apply_override(d, o)
    return d


def read_config_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config error: config file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config error: cannot read config file {str(path)!r}: {e}") from None


def parse_config(text: str, source: str = "<string>", overrides: Sequence[str] = ()) -> RunConfig:
    """Parse and validate TOML text; ``overrides`` are ``section.key=value`` strings (``--set``)."""
    return from_dict(parse_toml(text, source, overrides), text, overrides)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a TOML config file."""
    return parse_config(read_config_text(path), str(path), overrides)
