#!/usr/bin/env bash
# The digits studies of issue 7 (scikit-learn's 8x8 digits standing in for MNIST / Olivetti):
#   scalar-field RBM with mu2 = 20 and 50 (the UV cutoff): spectrum of the data kernel vs the learned one,
#   sampled images; a Gaussian-Bernoulli phi^4 network: reconstructions and samples.
# Writes out/digits.npy, out/rbm_digits_*.h5, out/rbm_digits_spectrum.png, out/rbm_digits_images.png.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
NP=${NP:-2}
MPIRUN=${MPIRUN:-mpirun --oversubscribe $( [ "$(id -u)" = 0 ] && echo --allow-run-as-root )}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
mkdir -p out
SECONDS=0
"$PYTHON" -m parallel_qftml.datasets digits out/digits.npy --force
for c in rbm_digits_mu20 rbm_digits_mu50 rbm_digits_phi4; do
    $MPIRUN -n "$NP" "$PYTHON" -m mpi4py -m parallel_qftml rbm "jobs/configs/$c.toml" --set output.progress=false
done
"$PYTHON" analysis/plot_rbm_digits.py --data out/digits.npy --scalar out/rbm_digits_mu20.h5 out/rbm_digits_mu50.h5 \
    --phi4 out/rbm_digits_phi4.h5 --out out/rbm_digits --force
echo "digits done in ${SECONDS}s"
