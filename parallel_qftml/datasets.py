"""Training data for ``pqml learn`` in data mode (section III B of the paper): serial, NumPy only, no MPI.

* ``gaussian(shape, n, mu, sigma, seed)``: n configurations with i.i.d. N(mu, sigma^2) sites (Fig. 8 uses
  mu = -0.5, sigma = 0.05), shape (n, *shape).
* ``image(size)``: a greyscale image scaled to [-1, 1], shape (size, size) (Fig. 9; the paper uses a CIFAR-10
  image, here matplotlib's bundled sample photograph ``grace_hopper.jpg``, read and resized with PIL).
* ``digits()``: scikit-learn's bundled 8x8 handwritten digits (1797 images, the UCI optdigits test set),
  pixel / 16 in [0, 1], shape (1797, 64): the offline stand-in for MNIST in the RBM studies (docs/rbm.md).
  scikit-learn is an optional dependency (installed by ``make setup``; only this data set needs it).

Command line (writes with ``np.save(..., allow_pickle=False)``; an existing OUT is refused, exit 2, unless
``--force``)::

    python -m parallel_qftml.datasets gaussian OUT.npy --shape 4 4 --n 100 --mu -0.5 --sigma 0.05 --seed 1
    python -m parallel_qftml.datasets image OUT.npy --size 32
    python -m parallel_qftml.datasets digits OUT.npy
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

IMAGE_NAME = "grace_hopper.jpg"


def gaussian(shape: Sequence[int], n: int, mu: float = -0.5, sigma: float = 0.05, seed: int = 0) -> np.ndarray:
    """(n, *shape) float64 array of independent N(mu, sigma^2) values (numpy.random.default_rng(seed))."""
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape must be a non-empty list of positive integers, got {shape}")
    if int(n) < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    rng = np.random.default_rng(int(seed))
    return rng.normal(float(mu), float(sigma), size=(int(n), *shape))


def image(size: int = 32) -> np.ndarray:
    """(size, size) float64 greyscale image in [-1, 1] (min -> -1, max -> +1): matplotlib's bundled
    ``grace_hopper.jpg``, centre-cropped to a square, converted to luminance and resized (PIL, Lanczos).
    Row 0 is the top of the picture (plot with imshow's default origin="upper")."""
    size = int(size)
    if size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size}")
    from matplotlib import cbook
    from PIL import Image
    with cbook.get_sample_data(IMAGE_NAME) as fh:
        im = Image.open(fh)
        im.load()
    im = im.convert("L")
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.LANCZOS)
    x = np.asarray(im, dtype=np.float64)
    lo, hi = x.min(), x.max()
    if hi <= lo:
        raise ValueError("the sample image is constant")
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def digits() -> np.ndarray:
    """scikit-learn's 8x8 digits as rows (1797, 64), pixel values / 16 in [0, 1] (as MNIST / 255)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("the digits data set needs scikit-learn (pip install scikit-learn; make setup installs it)") \
            from None
    return load_digits().data.astype(np.float64) / 16.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m parallel_qftml.datasets",
                                description="Write training data for pqml learn (data mode) as a .npy file.")
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    g = sub.add_parser("gaussian", help="configurations with i.i.d. Gaussian sites (Fig. 8)")
    g.add_argument("out", metavar="OUT.npy")
    g.add_argument("--shape", type=int, nargs="+", required=True, help="lattice shape, e.g. 4 4")
    g.add_argument("--n", type=int, default=100, help="number of configurations (default 100)")
    g.add_argument("--mu", type=float, default=-0.5, help="mean (default -0.5)")
    g.add_argument("--sigma", type=float, default=0.05, help="standard deviation (default 0.05)")
    g.add_argument("--seed", type=int, default=1, help="numpy seed (default 1)")
    g.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    i = sub.add_parser("image", help="a greyscale image in [-1, 1] (Fig. 9)")
    i.add_argument("out", metavar="OUT.npy")
    i.add_argument("--size", type=int, default=32, help="side length in pixels (default 32)")
    i.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    d = sub.add_parser("digits", help="scikit-learn's 8x8 digits as rows (1797, 64) in [0, 1] (RBM)")
    d.add_argument("out", metavar="OUT.npy")
    d.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prog = "parallel_qftml.datasets"
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"{prog}: error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    try:
        if args.kind == "gaussian":
            arr = gaussian(args.shape, args.n, args.mu, args.sigma, args.seed)
        elif args.kind == "image":
            arr = image(args.size)
        else:
            arr = digits()
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:          # np.save would append ".npy" to a name without it
        np.save(fh, arr, allow_pickle=False)
    print(f"wrote {out}: shape {arr.shape}, min {arr.min():.4g}, max {arr.max():.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
