"""`pqml rbm`: a training run's output; a run resumed from its checkpoint (on another rank count) is
bit-identical to an uninterrupted one; bad data and a kernel losing positive definiteness give clear
errors (exit 2 / exit 4), never silent NaNs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import env, pqml_cmd, read_h5  # noqa: E402

CONFIG = """
[rbm]
n_hidden = 10
mu2 = 9.0
learn_mu2 = true
[target]
kind = "free_field"
shape = [10]
m2 = 4.0
[train]
epochs = 60
n_chains = 16
k = 2
[optimizer]
kind = "adam"
lr = 0.01
[sampler]
seed = 5
[output]
path = "{path}"
overwrite = true
progress = false
[checkpoint]
every = 20
"""


def run(n, cwd, *args):
    return subprocess.run(pqml_cmd(n, "rbm", *args), capture_output=True, text=True, env=env(), cwd=cwd, timeout=300)


def test_rbm_run_and_resume_bit_identical(tmp_path):
    (tmp_path / "ref.toml").write_text(CONFIG.format(path="ref.h5"))
    r = run(1, tmp_path, "ref.toml")
    assert r.returncode == 0, r.stderr
    ref = read_h5(tmp_path / "ref.h5")
    assert ref["complete"] and ref["rbm/eigenvalues"].shape == (60, 10) and ref["rbm/params/W"].shape == (10, 10)
    assert np.all(np.diff(ref["rbm/eigenvalues"], axis=1) >= 0)              # ascending
    with h5py.File(tmp_path / "ref.h5") as f:
        assert f["rbm"].attrs["mu2"] == ref["rbm/mu2"][-1]
    (tmp_path / "run.toml").write_text(CONFIG.format(path="run.h5"))
    r = run(2, tmp_path, "run.toml", "--set", "train.epochs=40")
    assert r.returncode == 0, r.stderr
    r = run(1, tmp_path, "run.toml", "--resume")
    assert r.returncode == 0, r.stderr
    out = read_h5(tmp_path / "run.h5")
    assert sorted(out) == sorted(ref)
    for k in ref:
        assert np.array_equal(out[k], ref[k], equal_nan=True), k


def test_bad_data_and_loss_of_positivity(tmp_path):
    data = np.random.default_rng(1).normal(size=(50, 10))
    data[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", data, allow_pickle=False)
    text = CONFIG.format(path="bad.h5").replace('[target]\nkind = "free_field"\nshape = [10]\nm2 = 4.0',
                                                '[data]\npath = "nan.npy"\nbatch_size = 10')
    (tmp_path / "nan.toml").write_text(text)
    r = run(1, tmp_path, "nan.toml")
    assert r.returncode == 2 and r.stderr.strip().startswith("pqml: error:") and "NaN" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.h5").exists()
    (tmp_path / "pd.toml").write_text(CONFIG.format(path="pd.h5").replace("lr = 0.01", "lr = 50.0").replace(
        "learn_mu2 = true", "learn_mu2 = false").replace('kind = "adam"', 'kind = "sgd"'))
    r = run(1, tmp_path, "pd.toml")
    assert r.returncode == 4, r.stderr
    assert "positive" in r.stderr.splitlines()[-1] or "not finite" in r.stderr.splitlines()[-1]
    with h5py.File(tmp_path / "pd.h5") as f:
        assert not f.attrs["complete"]
        assert np.all(np.isfinite(f["rbm/eigenvalues"][()]))


def test_phi4_network_on_data_resumes_bit_identical(tmp_path):
    """A Gaussian-Bernoulli phi^4 network trained by PCD on Gaussian data: 2 ranks then 1 rank resumed ==
    1 rank uninterrupted."""
    np.save(tmp_path / "d.npy", np.random.default_rng(3).normal(0.2, 0.7, size=(40, 12)), allow_pickle=False)
    text = """
[rbm]
model = "gaussian-bernoulli"
n_hidden = 5
[data]
path = "d.npy"
batch_size = 10
[train]
epochs = 6
n_chains = 7
k = 2
[optimizer]
kind = "momentum"
lr = 0.01
[sampler]
seed = 9
[output]
path = "{path}"
overwrite = true
progress = false
[checkpoint]
every = 2
"""
    (tmp_path / "ref.toml").write_text(text.format(path="ref.h5"))
    r = run(1, tmp_path, "ref.toml")
    assert r.returncode == 0, r.stderr
    (tmp_path / "run.toml").write_text(text.format(path="run.h5"))
    assert run(2, tmp_path, "run.toml", "--set", "train.epochs=4").returncode == 0
    r = run(1, tmp_path, "run.toml", "--resume")
    assert r.returncode == 0, r.stderr
    ref, out = read_h5(tmp_path / "ref.h5"), read_h5(tmp_path / "run.h5")
    assert ref["rbm/free_energy"].shape == (6,) and np.all(np.isfinite(ref["rbm/free_energy"]))
    assert sorted(out) == sorted(ref)
    for k in ref:
        assert np.array_equal(out[k], ref[k], equal_nan=True), k


def test_backtracking_keeps_the_kernel_positive(tmp_path):
    """train.on_nonpd = "backtrack": a step that breaks positive definiteness is undone and retried with
    half the rate; with "error" the same run stops with exit code 4."""
    text = (CONFIG.format(path="bt.h5").replace("lr = 0.01", "lr = 30.0").replace('kind = "adam"', 'kind = "sgd"')
            .replace("learn_mu2 = true", "learn_mu2 = false").replace("k = 2", 'k = 2\ngradient = "exact"'))
    (tmp_path / "err.toml").write_text(text)
    assert run(1, tmp_path, "err.toml").returncode == 4
    (tmp_path / "bt.toml").write_text(text.replace("gradient", 'on_nonpd = "backtrack"\ngradient'))
    r = run(1, tmp_path, "bt.toml")
    assert r.returncode == 0, r.stderr
    out = read_h5(tmp_path / "bt.h5")
    assert out["rbm/backtracks"].sum() > 0 and np.all(out["rbm/eigenvalues"][:, 0] > 0)


def test_digits_pipeline_small(tmp_path):
    """datasets digits -> pqml rbm (scalar RBM and phi^4 network, a few epochs) -> plot_rbm_digits.py."""
    repo = Path(__file__).resolve().parents[2]
    py = [sys.executable]
    r = subprocess.run(py + ["-m", "parallel_qftml.datasets", "digits", "digits.npy"], capture_output=True, text=True,
                       env=env(), cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    d = np.load(tmp_path / "digits.npy")
    assert d.shape == (1797, 64) and d.min() == 0 and d.max() == 1
    for name in ("rbm_digits_mu20", "rbm_digits_phi4"):
        text = (repo / "jobs" / "configs" / f"{name}.toml").read_text().replace("out/digits.npy", "digits.npy") \
            .replace(f"out/{name}.h5", f"{name}.h5")
        (tmp_path / f"{name}.toml").write_text(text)
        r = run(1, tmp_path, f"{name}.toml", "--set", "train.epochs=3", "--set", "output.progress=false")
        assert r.returncode == 0, r.stderr
    r = subprocess.run(py + [str(repo / "analysis" / "plot_rbm_digits.py"), "--data", "digits.npy", "--scalar",
                             "rbm_digits_mu20.h5", "--phi4", "rbm_digits_phi4.h5", "--out", "fig"],
                       capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fig_spectrum.png").stat().st_size > 0 and (tmp_path / "fig_images.png").stat().st_size > 0
    r = subprocess.run(py + [str(repo / "analysis" / "plot_rbm_digits.py"), "--data", "digits.npy", "--scalar",
                             "rbm_digits_mu20.h5", "--out", "fig"], capture_output=True, text=True, env=env(),
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "exists" in r.stderr                 # no overwrite without --force


def test_killed_rbm_training_resumes_bit_identical(tmp_path):
    """SIGKILL of a 2-rank run after a checkpoint, --resume on 1 rank: identical to the uninterrupted run."""
    import time
    from launch import kill_run, start, wait_for
    text = CONFIG.format(path="{path}").replace("epochs = 60", "epochs = 3000").replace("every = 20", "every = 100")
    (tmp_path / "ref.toml").write_text(text.format(path="ref.h5"))
    assert run(1, tmp_path, "ref.toml").returncode == 0
    cfg = tmp_path / "run.toml"
    cfg.write_text(text.format(path=str(tmp_path / "run.h5")))
    p = start(2, "rbm", cfg)
    wait_for(p, "checkpoint ")
    time.sleep(0.2)
    assert p.poll() is None, "the run finished before the kill"
    kill_run(p, cfg)
    r = run(1, tmp_path, str(cfg), "--resume")
    assert r.returncode == 0, r.stderr
    ref, out = read_h5(tmp_path / "ref.h5"), read_h5(tmp_path / "run.h5")
    assert sorted(out) == sorted(ref)
    for k in ref:
        assert np.array_equal(out[k], ref[k], equal_nan=True), k


def test_rbm_data_of_wrong_shape(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(10), allow_pickle=False)
    text = CONFIG.format(path="w.h5").replace('[target]\nkind = "free_field"\nshape = [10]\nm2 = 4.0',
                                              '[data]\npath = "flat.npy"\nbatch_size = 10')
    (tmp_path / "w.toml").write_text(text)
    r = run(1, tmp_path, "w.toml")
    assert r.returncode == 2 and "shape" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w.h5").exists()


def test_rows_every_save_every_epochs(tmp_path):
    """output.save_every = 7: the rows are those of a per-epoch run at epochs 7, 14, ... (spectrum, KL
    bit-identical), /rbm/backtracks sums the halvings since the previous row, also across a checkpoint
    at a non-row epoch (epoch 40, pending halvings kept in the checkpoint): 2 ranks to epoch 40, resumed on
    1 rank to 60 == uninterrupted."""
    text = (CONFIG.format(path="{path}").replace("lr = 0.01", "lr = 30.0").replace('kind = "adam"', 'kind = "sgd"')
            .replace("learn_mu2 = true", "learn_mu2 = false")
            .replace("k = 2", 'k = 2\ngradient = "exact"\non_nonpd = "backtrack"'))
    (tmp_path / "all.toml").write_text(text.format(path="all.h5"))
    assert run(1, tmp_path, "all.toml").returncode == 0
    every = text.replace("progress = false", "progress = false\nsave_every = 7")
    (tmp_path / "ref.toml").write_text(every.format(path="ref.h5"))
    assert run(1, tmp_path, "ref.toml").returncode == 0
    full, ref = read_h5(tmp_path / "all.h5"), read_h5(tmp_path / "ref.h5")
    rows = np.arange(7, 61, 7)
    assert np.array_equal(ref["rbm/epoch"], rows)
    for k in ("eigenvalues", "singular_values", "kl", "mu2", "lr", "grad_norm"):
        assert np.array_equal(ref[f"rbm/{k}"], full[f"rbm/{k}"][rows - 1]), k
    bt = np.add.reduceat(full["rbm/backtracks"][:56], np.arange(0, 56, 7))
    assert np.array_equal(ref["rbm/backtracks"], bt) and bt.sum() > 0
    assert full["rbm/backtracks"][35:40].sum() > 0          # halvings pending at the checkpoint of epoch 40
    (tmp_path / "run.toml").write_text(every.format(path="run.h5"))
    assert run(2, tmp_path, "run.toml", "--set", "train.epochs=40").returncode == 0
    r = run(1, tmp_path, "run.toml", "--resume")
    assert r.returncode == 0, r.stderr
    out = read_h5(tmp_path / "run.h5")
    assert sorted(out) == sorted(ref)
    for k in ref:
        assert np.array_equal(out[k], ref[k], equal_nan=True), k
