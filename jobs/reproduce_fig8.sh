#!/usr/bin/env bash
# Fig. 8 of Bachtis, Aarts, Lucini (PRD 103, 074510): learning from data (KL(q||p), section III B).
# Gaussian data (mu = -0.5, sigma = 0.05 per site, 4x4, 100 configurations) -> learn the Z2-symmetric S
# (w, a, b) and S_b (w, a, b, r) -> sample both with Metropolis from random starts -> histogram of phi_i.
# Expected: the data and S_b peak at -0.5 only; S reproduces -0.5 and the mirrored +0.5 (over its chains).
# Usage: jobs/reproduce_fig8.sh   (PYTHON=... chooses the interpreter, SEEDS="1 2 ..." the chains; writes
# out/fig8*; ~1 min of CPU: two learning runs of ~5 s, 2 x 16 short sampling runs of ~1.7 s)
# Decisions (proposal, optimizer, several chains for S) are documented in the configs' headers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-"$(seq -s " " 1 16)"}
mkdir -p out out/fig8_samples
SECONDS=0

echo "== data"
"$PYTHON" -m parallel_qftml.datasets gaussian out/fig8_data.npy --shape 4 4 --n 100 --mu -0.5 --sigma 0.05 \
    --seed 1 --force

echo "== learn S (Z2-symmetric) and S_b (with r)"
"$PYTHON" -m parallel_qftml learn jobs/configs/fig8_data_gaussian.toml --set output.progress=false
"$PYTHON" -m parallel_qftml learn jobs/configs/fig8_data_gaussian_r.toml --set output.progress=false

echo "== sample (one chain per seed: $SEEDS)"
s_files=() ; sb_files=()
for seed in $SEEDS; do
    "$PYTHON" -m parallel_qftml sample jobs/configs/fig8_sample.toml \
        --set sampler.seed="$seed" --set output.path="out/fig8_samples/S_$seed.h5" | tail -n 1
    "$PYTHON" -m parallel_qftml sample jobs/configs/fig8_sample_r.toml \
        --set sampler.seed="$seed" --set output.path="out/fig8_samples/Sb_$seed.h5" | tail -n 1
    s_files+=("out/fig8_samples/S_$seed.h5") ; sb_files+=("out/fig8_samples/Sb_$seed.h5")
done

echo "== plot"
"$PYTHON" analysis/plot_fig8.py --data out/fig8_data.npy --samples "${s_files[@]}" --samples-r "${sb_files[@]}" \
    --out out/fig8.png
"$PYTHON" analysis/plot_learning.py out/fig8_S.h5 --out out/fig8_learning_S.png --title "Fig. 8: learning S"
"$PYTHON" analysis/plot_learning.py out/fig8_Sb.h5 --out out/fig8_learning_Sb.png --title "Fig. 8: learning S_b"
echo "fig8 done in ${SECONDS}s wall"
