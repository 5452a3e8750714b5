#!/usr/bin/env bash
# Fig. 9 of Bachtis, Aarts, Lucini (PRD 103, 074510): a 32x32 image learned as a configuration of the
# inhomogeneous phi^4 MRF (data mode), then a Markov chain from a random field after 1, 10 and 50 sweeps.
# Usage: jobs/reproduce_fig9.sh   (PYTHON=... chooses the interpreter; writes out/fig9*; ~30 s of CPU)
# Decisions (image source, r term, epochs, proposal) are documented in jobs/configs/fig9_image.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p out
SECONDS=0

echo "== data"
"$PYTHON" -m parallel_qftml.datasets image out/fig9_image.npy --size 32 --force

echo "== learn (4x10^4 epochs)"
"$PYTHON" -m parallel_qftml learn jobs/configs/fig9_image.toml --set output.progress=false

echo "== sample 50 sweeps from a random field"
"$PYTHON" -m parallel_qftml sample jobs/configs/fig9_sample.toml | tail -n 1

echo "== plot"
"$PYTHON" analysis/plot_fig9.py --image out/fig9_image.npy --samples out/fig9_sample.h5 --sweeps 1 10 50 \
    --out out/fig9.png
"$PYTHON" analysis/plot_learning.py out/fig9.h5 --out out/fig9_learning.png --title "Fig. 9: learning the image"
echo "fig9 done in ${SECONDS}s wall"
