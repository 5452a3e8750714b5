"""Couplings files ([action] kind = "file", docs/schema.md "Couplings file"): written from numpy arrays
with write_couplings_file, sampled bit-identically to the same couplings given in TOML, and validated as
strictly as TOML (one-line error naming the file and dataset, exit 2, nothing written)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import env, pqml_cmd  # noqa: E402

from parallel_qftml.errors import UserError  # noqa: E402
from parallel_qftml.io.couplings import read_couplings, write_couplings_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE = """
[lattice]
shape = [4, 4]
[action]
{action}
[sampler]
seed = 5
n_therm = 10
n_sweeps = 20
[output]
path = "{out}"
progress = false
"""
SHAPE = (4, 4)


def run(tmp_path, *args):
    return subprocess.run(pqml_cmd(1, *args), capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=300)


def good(**over):
    d = {"w": np.ones((2, *SHAPE)), "a": np.full(SHAPE, 1.52425), "b": np.full(SHAPE, 0.175)}
    d.update(over)
    return d


def test_file_round_trip_is_bit_identical_to_toml(tmp_path):
    """write_couplings_file (r omitted -> 0, w_nnn = -0.5) then kind = "file" gives the same observables,
    bit for bit, as the same homogeneous couplings in TOML."""
    c = good()
    write_couplings_file(tmp_path / "c.h5", c["w"], c["a"], c["b"], w_nnn=-0.5)
    (tmp_path / "file.toml").write_text(SAMPLE.format(action='kind = "file"\npath = "c.h5"', out="f.h5"))
    (tmp_path / "toml.toml").write_text(SAMPLE.format(
        action='kind = "mrf"\nw = 1.0\na = 1.52425\nb = 0.175\nw_nnn = -0.5', out="t.h5"))
    for cfg in ("file.toml", "toml.toml"):
        r = run(tmp_path, "sample", cfg)
        assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "f.h5") as f, h5py.File(tmp_path / "t.h5") as t:
        assert sorted(f["observables"]) == sorted(t["observables"])
        for k in f["observables"]:
            assert np.array_equal(f["observables"][k][()], t["observables"][k][()]), k
        assert f["observables/action"].shape == (20, 1)
        for k in "wabr":
            assert np.array_equal(f[f"couplings/{k}"][()], t[f"couplings/{k}"][()]), k
        assert f["couplings"].attrs["w_nnn"] == -0.5


def test_writer_is_atomic_and_refuses_to_overwrite(tmp_path):
    p = tmp_path / "c.h5"
    c = good()
    write_couplings_file(p, c["w"], c["a"], c["b"], r=np.full(SHAPE, 0.1))
    with pytest.raises(UserError, match="exists"):
        write_couplings_file(p, c["w"], c["a"], c["b"])
    write_couplings_file(p, c["w"], 2 * c["a"], c["b"], overwrite=True)
    w, site, w_nnn = read_couplings(str(p), SHAPE)
    assert np.array_equal(site["a"], 2 * c["a"]) and np.all(site["r"] == 0) and w_nnn == 0.0
    for bad, word in ((dict(b=np.full(SHAPE, -1.0)), "unbounded"), (dict(a=np.full(SHAPE, np.nan)), "NaN"),
                      (dict(w=np.ones((3, *SHAPE))), "shape"), (dict(a=np.array([["x"] * 4] * 4)), "dtype")):
        c = good(**bad)
        with pytest.raises(UserError, match=word):
            write_couplings_file(tmp_path / "d.h5", c["w"], c["a"], c["b"])
    c = good()
    with pytest.raises(UserError, match="w_nnn"):
        write_couplings_file(tmp_path / "d.h5", c["w"], c["a"], c["b"], w_nnn="abc")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["c.h5"]


def _file(path, edit):
    """A valid couplings file written with raw h5py (w, a, b, r, as pqml writes it), then `edit(group)`."""
    with h5py.File(path, "w") as f:
        g = f.create_group("couplings")
        for k, v in good(r=np.zeros(SHAPE)).items():
            g.create_dataset(k, data=v)
        edit(g)


def test_r_and_w_nnn_are_optional_and_integers_are_real(tmp_path):
    _file(tmp_path / "c.h5", lambda g: (g.__delitem__("r"), _replace("w", np.ones((2, *SHAPE), dtype=np.int32))(g)))
    w, site, w_nnn = read_couplings(str(tmp_path / "c.h5"), SHAPE)
    assert w.dtype == np.float64 and np.all(w == 1) and np.all(site["r"] == 0) and w_nnn == 0.0


def _replace(name, data, **kw):
    def edit(g):
        del g[name]
        g.create_dataset(name, data=data, **kw)
    return edit


BAD = {
    "vlen_strings": (_replace("a", np.array([["1.5"] * 4] * 4, dtype=object), dtype=h5py.string_dtype()),
                     "/couplings/a", "dtype"),
    "fixed_strings": (_replace("b", np.array([[b"0.1"] * 4] * 4)), "/couplings/b", "dtype"),
    "complex": (_replace("a", np.full(SHAPE, 1 + 1j)), "/couplings/a", "dtype"),
    "string_w_nnn": (lambda g: g.attrs.__setitem__("w_nnn", "abc"), "w_nnn", "real number"),
    "nan_w_nnn": (lambda g: g.attrs.__setitem__("w_nnn", np.nan), "w_nnn", "finite"),
    "array_w_nnn": (lambda g: g.attrs.__setitem__("w_nnn", [1.0, 2.0]), "w_nnn", "real number"),
    "negative_b": (_replace("b", np.full(SHAPE, -1.0)), "unbounded below", "b = -1 < 0 at site (0, 0)"),
    "free_massless": (lambda g: (_replace("b", np.zeros(SHAPE))(g), _replace("a", np.full(SHAPE, 2.0))(g)),
                      "unbounded below", "eigenvalue"),
    "inf": (_replace("w", np.where(np.arange(32).reshape(2, 4, 4) == 5, np.inf, 1.0)), "/couplings/w", "(0, 1, 1)"),
    "shape": (_replace("a", np.ones((4, 2))), "/couplings/a", "shape (4, 2)"),
    "missing_b": (lambda g: g.__delitem__("b"), "/couplings", "b"),
    "group_is_dataset": (lambda g: (g.__delitem__("r"), g.create_group("r")), "/couplings/r", "not a dataset"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_couplings_file_is_one_line_user_error(tmp_path, monkeypatch, case):
    """In process (the config's action, as pqml sample builds it); the CLI path is the test below."""
    from parallel_qftml.config import parse_config
    edit, *words = BAD[case]
    _file(tmp_path / "c.h5", edit)
    monkeypatch.chdir(tmp_path)
    cfg = parse_config(SAMPLE.format(action='kind = "file"\npath = "c.h5"', out="out/s.h5"))
    with pytest.raises(UserError) as e:
        cfg.to_action()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("'c.h5'"), msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("case", ["vlen_strings", "string_w_nnn", "negative_b"])
def test_bad_couplings_file_exits_2_naming_file_and_dataset(tmp_path, case):
    edit, *words = BAD[case]
    _file(tmp_path / "c.h5", edit)
    (tmp_path / "s.toml").write_text(SAMPLE.format(action='kind = "file"\npath = "c.h5"', out="out/s.h5"))
    r = run(tmp_path, "sample", "s.toml")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqml: error: 'c.h5'"), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "s.toml"]


def test_schema_doc_example_runs(tmp_path, monkeypatch):
    """The python example of docs/schema.md, "Couplings file", writes a file that read_couplings accepts."""
    text = (REPO / "docs" / "schema.md").read_text()
    section = text[text.index("## Couplings file"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "schema.md", "exec"), {})
    w, site, w_nnn = read_couplings("couplings.h5", (8, 8))
    assert w.shape == (2, 8, 8) and np.all(site["b"] > 0) and np.isfinite(w_nnn)
