#!/usr/bin/env bash
# Figs. 3, 4, 5 (+6), 7, 9, 10, 11 of Aarts, Lucini, Park, "Scalar field restricted Boltzmann machine as an
# ultraviolet regulator", PRD 109, 034521 (2024): a scalar-field RBM learns the free lattice field (m^2 = 4,
# 1D N_v = 10 or 2D 4x4, sigma_h^2 = 1) from its exact correlation matrix with PCD (parallel_qftml.rbm).
#   fig3/fig4  Cholesky / symmetric exact initialisation: lambda_alpha stay at kappa_alpha; norms of parts of W
#   fig5       random W ~ N(0, 0.1^2): lambda_alpha -> kappa_alpha (IR first, Fig. 6 panel); action density
#   fig7       learnable mu^2 from 7 < kappa_max: mu^2 rises to kappa_max = 8
#   fig9       2D 4x4, mu^2 = 16: fixed learning rate vs lr x 0.99 every 128 epochs (eq. A2)
#   fig10      mu^2 = 7 < kappa_max: the modes above mu^2 freeze at mu^2
#   fig11      N_h = 9, 8, 7, 6: only the lowest N_h modes are learned, the rest sit at mu^2
# Usage: jobs/reproduce_rbm_figs.sh [fig3 fig5 ...]   (default: all; PYTHON=... chooses the interpreter)
# Writes out/rbm_<fig>.npz (histories) and out/rbm_<fig>.png. Serial; ~80 s of CPU in total (fig9 ~45 s).
# Settings (learning rates, epochs: the paper does not give them): `analysis/plot_rbm.py list`, docs/rbm.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
FIGS=("$@")
[ ${#FIGS[@]} -eq 0 ] && FIGS=(fig3 fig4 fig5 fig7 fig9 fig10 fig11)
mkdir -p out
SECONDS=0

for f in "${FIGS[@]}"; do
    echo "== $f"
    start=$SECONDS
    "$PYTHON" analysis/plot_rbm.py train "$f" --out "out/rbm_$f.npz"
    "$PYTHON" analysis/plot_rbm.py plot "out/rbm_$f.npz" --out "out/rbm_$f.png"
    echo "$f done in $((SECONDS - start))s wall"
done
echo "rbm figures done in ${SECONDS}s wall"
