#!/usr/bin/env python3
"""Figures of the RBM digits studies (jobs/reproduce_rbm_digits.sh; docs/rbm.md).

    python analysis/plot_rbm_digits.py --data digits.npy --scalar A.h5 [B.h5 ...] [--phi4 P.h5] --out PREFIX [--force]

PREFIX_spectrum.png: eigenvalues of the data kernel C⁻¹ (C = ⟨φφᵀ⟩ over the data, the target of the
scalar-field RBM, eq. 21) against the learned RBM eigenvalues λ_α = μ² − σ_h² ξ_α² of each --scalar file,
mode by mode on a log scale, with μ² marked (the UV cutoff: modes above μ² cannot be learned).
PREFIX_images.png: data examples; samples φ ~ N(0, K⁻¹) of each scalar RBM; and, with --phi4, the
Gaussian–Bernoulli φ⁴ network's reconstructions v → ⟨h|v⟩ → ⟨v|h⟩ of the same data examples and
samples after 200 Gibbs steps from noise. Reads /rbm/params of pqml rbm files; serial NumPy only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pqml_analysis.files import AnalysisError, check_outputs, fail  # noqa: E402

SCRIPT = "plot_rbm_digits"


def params(path) -> tuple:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            if "rbm/params" not in f:
                raise AnalysisError(f"{path}: no /rbm/params (not a pqml rbm output)")
            return {k: f["rbm/params"][k][()] for k in f["rbm/params"]}, dict(f["rbm"].attrs)
    except OSError as e:
        raise AnalysisError(f"{path}: cannot read ({e})") from None


def scalar_kernel(p, attrs):
    W = p["W"]
    return float(attrs.get("mu2", p["mu2"])) * np.eye(W.shape[0]) - float(attrs.get("sigma_h2", 1.0)) * W @ W.T


def phi4_gb(p, v, rng, steps=0):
    """Gaussian visible, +-1 hidden: <h|v> = tanh(v W - s); v|h ~ N((W h - r) / (2a), 1 / (2a))."""
    W, r, a, s = p["W"], p["r"], p["a"], p["s"]
    if steps == 0:                                  # reconstruction through the conditional means
        return (np.tanh(v @ W - s) @ W.T - r) / (2 * a)
    for _ in range(steps):
        ph = 0.5 * (1 + np.tanh(v @ W - s))         # P(h = +1 | v)
        h = np.where(rng.random(ph.shape) < ph, 1.0, -1.0)
        v = (h @ W.T - r) / (2 * a) + rng.standard_normal(v.shape) / np.sqrt(2 * a)
    return (np.tanh(v @ W - s) @ W.T - r) / (2 * a)   # shown: the mean of the last step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--scalar", nargs="+", required=True)
    ap.add_argument("--phi4")
    ap.add_argument("--out", required=True)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    try:
        outs = [Path(f"{args.out}_spectrum.png"), Path(f"{args.out}_images.png")]
        check_outputs(outs, args.force)
        try:
            data = np.load(args.data, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise AnalysisError(f"{args.data}: cannot read ({e})") from None
        data = data.reshape(data.shape[0], -1)
        C = data.T @ data / data.shape[0]
        ev = np.linalg.eigvalsh(C)
        kappa = np.sort(1.0 / np.clip(ev, 1e-12 * ev.max(), None))   # constant pixels: C singular
        runs = [(path, *params(path)) for path in args.scalar]
        phi4 = params(args.phi4)[0] if args.phi4 else None
    except AnalysisError as e:
        return fail(SCRIPT, e)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    modes = np.arange(1, kappa.size + 1)
    ax.semilogy(modes, kappa, "k.", label="data kernel C⁻¹ (target)")
    for i, (path, p, attrs) in enumerate(runs):
        lam = np.sort(np.linalg.eigvalsh(scalar_kernel(p, attrs)))
        mu2 = float(attrs.get("mu2", p["mu2"]))
        ax.semilogy(modes, lam, "o", mfc="none", color=f"C{i}", label=f"RBM, μ² = {mu2:g} ({Path(path).name})")
        ax.axhline(mu2, color=f"C{i}", ls="--", lw=0.8)
    ax.set_ylim(0.05, 1e4)
    ax.set_xlabel("mode α (ascending; data modes beyond the top edge: pixels that never vary)")
    ax.set_ylabel("eigenvalue")
    ax.set_title("8×8 digits: spectrum of the data kernel and of the learned RBM kernels")
    ax.legend(fontsize="small")
    fig.savefig(outs[0], dpi=120)
    plt.close(fig)

    rng = np.random.default_rng(0)
    examples = data[rng.choice(data.shape[0], 8, replace=False)]
    rows = [("data", examples)]
    for path, p, attrs in runs:
        K = scalar_kernel(p, attrs)
        L = np.linalg.cholesky(np.linalg.inv(K))
        rows.append((f"RBM μ²={float(attrs.get('mu2', p['mu2'])):g}: samples", rng.standard_normal((8, K.shape[0])) @ L.T))
    if phi4 is not None:
        rows.append(("φ⁴ net: reconstructions", phi4_gb(phi4, examples, rng)))
        rows.append(("φ⁴ net: samples (200 Gibbs steps)", phi4_gb(phi4, rng.standard_normal((8, 64)), rng, 200)))
    fig, axes = plt.subplots(len(rows), 8, figsize=(8, 1.15 * len(rows)), constrained_layout=True)
    for (label, imgs), axrow in zip(rows, axes):
        for img, ax in zip(imgs, axrow):
            ax.imshow(img.reshape(8, 8), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
        axrow[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.savefig(outs[1], dpi=120)
    plt.close(fig)
    for o in outs:
        print(f"wrote {o}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
