#!/usr/bin/env bash
# Figs. 6 and 7 of Bachtis, Aarts, Lucini (PRD 103, 074510): the weight functions W(S) (eq. 22) of
# reweighting to the complex action A = A{4}(g4') + i 0.15 sum phi^2,
#   Fig. 6: from the learned MRF S (out/demo_learned_S.h5 of `bash jobs/demo.sh`), g4' in [-1.05, -0.8]:
#           the weight functions of neighbouring g4' overlap near g4 = -1; at g4' = -0.8 they break up;
#   Fig. 7: from a direct simulation of A{3} (g4 = 0; jobs/configs/fig7_sample_a3.toml, one process,
#           ~70 s): fine for g4' near 0, broken from g4' ~ -0.15 on, hopeless for g4' in [-1.05, -0.8].
# Usage: jobs/reproduce_fig6_7.sh   (PYTHON=... chooses the interpreter; writes out/fig6.png/.txt,
# out/fig7.png/.txt, out/fig7_a3.h5). If out/demo_learned_S.h5 is missing, the demo is run first
# (bash jobs/demo.sh, 2 MPI ranks, a few minutes). REDO_A3=1 resamples A{3} even if out/fig7_a3.h5 exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
TARGET=nn=-1,phi2=1.52425,phi4=0.175,nnn=-1,i_phi2=0.15
mkdir -p out
SECONDS=0

if [ ! -s out/demo_learned_S.h5 ]; then
    echo "== out/demo_learned_S.h5 missing: running the demo (jobs/demo.sh)"
    PYTHON="$PYTHON" bash jobs/demo.sh
fi

if [ ! -s out/fig7_a3.h5 ] || [ "${REDO_A3:-0}" = 1 ]; then
    echo "== sampling A{3} = -nn + 1.52425 phi2 + 0.175 phi4 on 4x4 (one process)"
    "$PYTHON" -m parallel_qftml sample jobs/configs/fig7_sample_a3.toml --set output.progress=false | tail -n 1
fi

echo "== Fig. 6: W(S) from the learned S"
"$PYTHON" analysis/plot_overlap.py out/demo_learned_S.h5 --target "$TARGET" --scan nnn=-1.05:-0.8:6 \
    --title "Fig. 6: learned MRF S -> A = A{4}(g4') + i 0.15 sum phi^2" --out out/fig6.png --force

echo "== Fig. 7: W(A{3}) from A{3}"
"$PYTHON" analysis/plot_overlap.py out/fig7_a3.h5 --target "$TARGET" --scan nnn=-0.25:0:6 --scan nnn=-1.05:-0.8:6 \
    --xlabel "A{3} (sampled action)" --title "Fig. 7: A{3} -> A = A{4}(g4') + i 0.15 sum phi^2" \
    --out out/fig7.png --force
echo "fig6/fig7 done in ${SECONDS}s wall"
