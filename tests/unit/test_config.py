"""Config loading and validation (serial, no MPI, no core modules needed except where marked)."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import sys
import types
from pathlib import Path

import pytest

from parallel_qftml.config import ConfigError, load_config, parse_config
from parallel_qftml.errors import UserError

REPO = Path(__file__).resolve().parents[2]

BASE = {
    "lattice": {"shape": [8, 8]},
    "parallel": {"n_replicas": 1},
    "action": {"kind": "mrf", "w": 1.0, "a": 1.52425, "b": 0.175},
    "sampler": {"seed": 12345, "n_sweeps": 10},
    "output": {"path": "out/x.h5"},
}


def _val(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if isinstance(v, float) and v != v:
        return "nan"
    return repr(v)


def dump(d: dict) -> str:
    """Minimal TOML writer for two-level configs (sections, optional sub-tables)."""
    lines = []
    for sec, table in d.items():
        if not isinstance(table, dict):
            lines.append(f"{sec} = {_val(table)}")
            continue
        lines.append(f"[{sec}]")
        subs = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines += [f"{k} = {_val(v)}" for k, v in table.items() if k not in subs]
        for k, sub in subs.items():
            lines.append(f"[{sec}.{k}]")
            lines += [f"{kk} = {_val(vv)}" for kk, vv in sub.items()]
    return "\n".join(lines) + "\n"


DELETE = object()


def cfg_with(changes: dict) -> str:
    """TOML text of BASE with {"section.key": value} changes; DELETE removes the key/section."""
    d = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = d
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return dump(d)


# ----------------------------------------------------------------------------- valid configs

def test_defaults():
    c = parse_config(dump(BASE))
    assert c.lattice.shape == (8, 8) and c.lattice.proc_grid is None and c.lattice.ndim == 2
    assert c.parallel.n_replicas == 1
    a = c.action
    assert (a.kind, a.w, a.a, a.b, a.r, a.w_nnn, a.spread) == ("mrf", 1.0, 1.52425, 0.175, 0.0, 0.0, 0.0)
    s = c.sampler
    assert (s.seed, s.n_sweeps, s.delta, s.n_hits, s.init, s.n_therm, s.target_acceptance, s.tune,
            s.measure_every) == (12345, 10, 1.0, 1, "random", 100, 0.5, True, 1)
    o = c.output
    assert (o.path, o.overwrite, o.plot, o.progress) == ("out/x.h5", False, False, True)
    assert c.text == dump(BASE)
    assert c.sha256 == hashlib.sha256(c.text.encode()).hexdigest()


def test_frozen():
    c = parse_config(dump(BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.sampler.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", ["demo", "example_3d", "target_a4"])
def test_shipped_configs_load(name):
    c = load_config(REPO / "jobs" / "configs" / f"{name}.toml")
    assert c.sha256 and c.text


def test_demo_values():
    c = load_config(REPO / "jobs" / "configs" / "demo.toml")
    assert c.lattice.shape == (64, 64)
    assert (c.action.kind, c.action.w, c.action.a, c.action.b) == ("mrf", 1.0, 1.52425, 0.175)
    assert (c.sampler.seed, c.sampler.n_therm, c.sampler.n_sweeps, c.sampler.measure_every) == (12345, 200, 1000, 2)
    assert (c.output.path, c.output.plot, c.parallel.n_replicas) == ("out/demo.h5", True, 1)


def test_target_and_lattice_kinds():
    t = parse_config(cfg_with({"action": {"kind": "target", "g": {"nn": -1, "phi2": 1.5, "phi4": 0.2,
                                                                   "nnn": -1, "i_phi2": 0.0}}}))
    assert dict(t.action.g) == {"nn": -1.0, "phi2": 1.5, "phi4": 0.2, "nnn": -1.0}
    lat = parse_config(cfg_with({"action": {"kind": "lattice", "kappa": 1, "mu2": -0.9515, "lam": 0.7}}))
    assert (lat.action.kappa, lat.action.mu2, lat.action.lam) == (1.0, -0.9515, 0.7)


def test_mrf_options():
    c = parse_config(cfg_with({"action.w": [1.0, 0.5], "action.r": 0.1, "action.w_nnn": 0.2,
                               "action.spread": 0.1, "lattice.proc_grid": [2, 1],
                               "sampler.seed": 2**64 - 1, "sampler.init": "cold", "sampler.tune": False}))
    assert c.action.w == (1.0, 0.5) and c.action.spread == 0.1 and c.lattice.proc_grid == (2, 1)
    assert c.sampler.seed == 2**64 - 1 and c.sampler.init == "cold" and c.sampler.tune is False


def test_overrides():
    c = parse_config(dump(BASE), overrides=["sampler.n_sweeps=77", "output.path=out/y.h5",
                                            "lattice.shape=[4, 4, 4]"])
    assert c.sampler.n_sweeps == 77 and c.output.path == "out/y.h5" and c.lattice.shape == (4, 4, 4)
    assert c.overrides == ("sampler.n_sweeps=77", "output.path=out/y.h5", "lattice.shape=[4, 4, 4]")
    with pytest.raises(ConfigError, match=r"sampler\.bogus"):
        parse_config(dump(BASE), overrides=["sampler.bogus=1"])
    with pytest.raises(ConfigError, match="--set"):
        parse_config(dump(BASE), overrides=["n_sweeps"])


# ----------------------------------------------------------------------------- errors

ERRORS = [
    # (changes, text that must appear in the message)
    ({"foo": {"x": 1}}, "foo"),
    ({"lattice.foo": 1}, "lattice.foo"),
    ({"lattice.shape": DELETE}, "lattice.shape"),
    ({"lattice": DELETE}, "[lattice]"),
    ({"lattice.shape": "64"}, "lattice.shape"),
    ({"lattice.shape": []}, "lattice.shape"),
    ({"lattice.shape": [4, 4, 4, 4, 4]}, "lattice.shape"),
    ({"lattice.shape": [8, -8]}, "lattice.shape"),
    ({"lattice.shape": [8, 8.0]}, "lattice.shape"),
    ({"lattice.shape": [8, True]}, "lattice.shape"),
    ({"lattice.proc_grid": [2]}, "lattice.proc_grid"),
    ({"lattice.proc_grid": [2, 0]}, "lattice.proc_grid"),
    ({"parallel.n_replicas": 0}, "parallel.n_replicas"),
    ({"parallel.n_replicas": 1.5}, "parallel.n_replicas"),
    ({"parallel.nodes": 1}, "parallel.nodes"),
    ({"action.kind": DELETE}, "action.kind"),
    ({"action.kind": "ising"}, "action.kind"),
    ({"action.kappa": 0.1}, "action.kappa"),
    ({"action.g": {"nn": 1}}, "action.g"),
    ({"action.a": DELETE}, "action.a"),
    ({"action.b": DELETE}, "action.b"),
    ({"action.a": "1.5"}, "action.a"),
    ({"action.b": -0.1}, "action.b"),
    ({"action.w": [1.0, 1.0, 1.0]}, "action.w"),
    ({"action.w": [1.0, "x"]}, "action.w[1]"),
    ({"action.w": True}, "action.w"),
    ({"action.spread": -0.1}, "action.spread"),
    ({"action.r": float("nan")}, "action.r"),
    ({"action": {"kind": "lattice", "kappa": 1.0, "mu2": -1.0}}, "action.lam"),
    ({"action": {"kind": "lattice", "kappa": 1.0, "mu2": -1.0, "lam": 1.0, "a": 1.0}}, "action.a"),
    ({"action": {"kind": "lattice", "kappa": 1.0, "mu2": -1.0, "lam": -1.0}}, "action.lam"),
    ({"action": {"kind": "target"}}, "action.g"),
    ({"action": {"kind": "target", "g": 1.0}}, "action.g"),
    ({"action": {"kind": "target", "g": {"nn": -1, "phi6": 1.0}}}, "action.g.phi6"),
    ({"action": {"kind": "target", "g": {"nn": "-1"}}}, "action.g.nn"),
    ({"action": {"kind": "target", "g": {"nn": -1, "phi4": -1.0}}}, "action.g.phi4"),
    ({"action": {"kind": "target", "g": {"nn": 0.0}}}, "action.g"),
    ({"action": {"kind": "target", "w": 1.0, "g": {"nn": -1}}}, "action.w"),
    ({"action": {"kind": "target", "g": {"nn": -1, "phi2": 1.5, "i_phi2": 0.3}}}, "action.g.i_phi2"),
    ({"sampler.seed": DELETE}, "sampler.seed"),
    ({"sampler.seed": -1}, "sampler.seed"),
    ({"sampler.seed": 2**64}, "sampler.seed"),
    ({"sampler.seed": 1.0}, "sampler.seed"),
    ({"sampler.delta": 0.0}, "sampler.delta"),
    ({"sampler.delta": float("nan")}, "sampler.delta"),
    ({"sampler.n_hits": 0}, "sampler.n_hits"),
    ({"sampler.n_hits": 256}, "sampler.n_hits"),
    ({"sampler.init": "hot"}, "sampler.init"),
    ({"sampler.n_therm": -1}, "sampler.n_therm"),
    ({"sampler.target_acceptance": 1.0}, "sampler.target_acceptance"),
    ({"sampler.target_acceptance": 0}, "sampler.target_acceptance"),
    ({"sampler.tune": "yes"}, "sampler.tune"),
    ({"sampler.n_sweeps": DELETE}, "sampler.n_sweeps"),
    ({"sampler.n_sweeps": 0}, "sampler.n_sweeps"),
    ({"sampler.measure_every": 0}, "sampler.measure_every"),
    ({"sampler.sweeps": 10}, "sampler.sweeps"),
    ({"output.path": DELETE}, "output.path"),
    ({"output.path": 3}, "output.path"),
    ({"output.path": ""}, "output.path"),
    ({"output.overwrite": "no"}, "output.overwrite"),
    ({"output.plot": 1}, "output.plot"),
    ({"output.progress": 0}, "output.progress"),
    ({"output.format": "h5"}, "output.format"),
]


@pytest.mark.parametrize("changes,key", ERRORS, ids=[e[1] + f"-{i}" for i, e in enumerate(ERRORS)])
def test_errors_name_the_key(changes, key):
    with pytest.raises(ConfigError) as ei:
        parse_config(cfg_with(changes))
    msg = str(ei.value)
    assert key in msg
    assert "\n" not in msg and msg.startswith("config error: ")
    assert isinstance(ei.value, UserError)


def test_exact_message():
    with pytest.raises(ConfigError) as ei:
        parse_config(cfg_with({"sampler.n_sweeps": -3}))
    assert str(ei.value) == "config error: sampler.n_sweeps must be a positive integer, got -3"


def test_complex_target_message():
    with pytest.raises(ConfigError) as ei:
        parse_config(cfg_with({"action": {"kind": "target", "g": {"nn": -1, "i_phi2": 0.5}}}))
    assert "cannot be sampled; it is reached by reweighting" in str(ei.value)


def test_other_kind_hint():
    with pytest.raises(ConfigError, match='belongs to action.kind = "lattice"'):
        parse_config(cfg_with({"action.kappa": 0.1}))


def test_syntax_error_names_file_and_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[lattice]\nshape = = [8, 8]\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(p) in str(ei.value) and "line" in str(ei.value) and "\n" not in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


# ----------------------------------------------------------------------------- to_action

class _FakeAction:
    calls: list = []

    @classmethod
    def _rec(cls, name, *a, **k):
        cls.calls.append((name, a, k))
        return types.SimpleNamespace(name=name, check_bounded=lambda shape: None)   # (tests/unit/test_bounded.py)

    homogeneous = classmethod(lambda cls, *a, **k: cls._rec("homogeneous", *a, **k))
    perturbed = classmethod(lambda cls, *a, **k: cls._rec("perturbed", *a, **k))
    from_lattice = classmethod(lambda cls, *a, **k: cls._rec("from_lattice", *a, **k))
    from_target = classmethod(lambda cls, *a, **k: cls._rec("from_target", *a, **k))


@pytest.fixture
def fake_action(monkeypatch):
    mod = types.ModuleType("parallel_qftml.models.action")
    mod.PhiFourAction = _FakeAction
    monkeypatch.setitem(sys.modules, "parallel_qftml.models.action", mod)
    _FakeAction.calls = []
    return _FakeAction


def test_to_action_calls_documented_constructors(fake_action):
    parse_config(dump(BASE)).to_action()
    parse_config(cfg_with({"action.spread": 0.1, "action.w": [1.0, 0.9]})).to_action()
    parse_config(cfg_with({"action": {"kind": "lattice", "kappa": 1, "mu2": -1, "lam": 1}})).to_action()
    parse_config(cfg_with({"action": {"kind": "target", "g": {"nn": -1, "phi4": 0.2}}})).to_action()
    assert fake_action.calls == [
        ("homogeneous", (2,), {"w": 1.0, "a": 1.52425, "b": 0.175, "r": 0.0, "w_nnn": 0.0}),
        ("perturbed", (2, 12345, 0.1), {"w": (1.0, 0.9), "a": 1.52425, "b": 0.175, "r": 0.0, "w_nnn": 0.0}),
        ("from_lattice", (2, 1.0, -1.0, 1.0), {}),
        ("from_target", (2, {"nn": -1.0, "phi4": 0.2}), {}),
    ]


@pytest.mark.parametrize("name, expect", [
    ("demo", dict(ndim=2, w=(1.0, 1.0), a=1.52425, b=0.175, r=0.0, w_nnn=0.0)),
    # kind = "lattice", kappa = 1, mu2 = -2.5, lam = 1 in 3D: w = kappa, a = (mu2 + 2 d kappa)/2, b = lam/4
    ("example_3d", dict(ndim=3, w=(1.0, 1.0, 1.0), a=1.75, b=0.25, r=0.0, w_nnn=0.0)),
    # kind = "target", g = {nn = -1, phi2 = 1.52425, phi4 = 0.175, nnn = -1}: w = -g_nn, w_nnn = -g_nnn
    ("target_a4", dict(ndim=2, w=(1.0, 1.0), a=1.52425, b=0.175, r=0.0, w_nnn=1.0)),
])
def test_to_action_real(name, expect):
    """The shipped configs give the real PhiFourAction with the couplings their [action] tables state."""
    act = load_config(REPO / "jobs" / "configs" / f"{name}.toml").to_action()
    got = {k: getattr(act, k) for k in expect}
    assert got == expect and act.spread == 0.0
