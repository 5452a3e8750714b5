#!/usr/bin/env bash
# Fig. 3 of Bachtis, Aarts, Lucini (PRD 103, 074510): KL(p_S || q_A4) of the learned inhomogeneous S and
# KL(q_A3 || q_A4) of the homogeneous A{3}, versus epoch (target mode, no data; jobs/configs/fig3_learn_a4.toml).
# Usage: jobs/reproduce_fig3.sh   (PYTHON=... chooses the interpreter; writes out/fig3*; ~3.5 min of CPU)
# No data set and no sampling step: the per-epoch KL estimates come from the learning chains themselves
# (exponential averages of 50 samples, with their ESS). The reference line KL(q_A3 || q_A4) is computed once
# by thermodynamic integration before the first epoch ([reference] estimator = "ti": 16 chains x 5000
# samples, ~20 s; docs/learning.md), printed in the summary line and drawn as a black line with its band;
# the final S's KL by TI (learn.final_kl = "ti", another ~20 s) is the point at the last epoch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p out
SECONDS=0

echo "== learn S against A{4}, with A{3} as reference"
"$PYTHON" -m parallel_qftml learn jobs/configs/fig3_learn_a4.toml --set output.progress=false | tee out/fig3_summary.txt

echo "== plot"
"$PYTHON" analysis/plot_learning.py out/fig3.h5 --panels kl --log-bins 60 --out out/fig3.png \
    --title "Fig. 3: KL to A{4} of the learned S and of A{3}"
"$PYTHON" analysis/plot_learning.py out/fig3.h5 --panels all --log-bins 60 --out out/fig3_couplings.png \
    --title "Fig. 3 run: couplings of S learning A{4}"
echo "fig3 done in ${SECONDS}s wall"
