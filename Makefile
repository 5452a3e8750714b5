# parallel_qftml -- build, demo, test and benchmark.
#
#   make demo    learn S for A{4}, sample it, reweight to the complex action (2 ranks) -> out/demo_*
#   make test    MPI tests on 2 and 4 ranks, then the serial unit tests
#   make bench   benchmark table (python -m parallel_qftml.bench $(BENCH_ARGS))
#   make test-slurm  a real one-node SLURM cluster runs the job templates (CI runs it after make test)
#   make bench-small pqml sample on one rank at small L, a measurement every sweep, beside C
#   make bench-io    parallel HDF5 write speed, checkpoint + restart time
#   make info    versions, MPI library, parallel HDF5
#   make clean / distclean
#
# Every target first runs `setup`, which installs whatever is missing (Debian packages
# for MPI and parallel HDF5, the .venv, h5py built against MPI-HDF5, an editable install
# of the package). Each step leaves a stamp in .venv/.stamps, so a second run is a no-op.
# See docs/install.md for what is done and why.

# Each recipe runs as one bash script that stops at the first failing command.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip
STAMPS := $(VENV)/.stamps

# --- MPI and parallel HDF5 ------------------------------------------------------------
# Debian/Ubuntu packages installed when the tools below are missing. On a cluster, load
# your MPI and HDF5 modules instead and set MPICC (default mpicc) and HDF5_DIR (the
# parallel HDF5 prefix); then apt is never used.
APT_PACKAGES        := openmpi-bin libopenmpi-dev libhdf5-openmpi-dev pkg-config
MPICC               ?= mpicc
HDF5_PKGCONFIG_NAME ?= hdf5-openmpi
HDF5_DIR            ?=

ifeq ($(strip $(HDF5_DIR)),)
HAVE_SYSTEM = command -v $(MPICC) >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 \
              && command -v h5pcc >/dev/null 2>&1 && pkg-config --exists $(HDF5_PKGCONFIG_NAME)
H5PY_ENV    = HDF5_MPI=ON CC=$(MPICC) HDF5_PKGCONFIG_NAME=$(HDF5_PKGCONFIG_NAME)
else
HAVE_SYSTEM = command -v $(MPICC) >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 \
              && test -e $(HDF5_DIR)/include/hdf5.h
H5PY_ENV    = HDF5_MPI=ON CC=$(MPICC) HDF5_DIR=$(HDF5_DIR)
endif

# Python packages of the venv (h5py is built separately, below).
PY_DEPS := numpy numba mpi4py cython pkgconfig matplotlib pytest pytest-mpi pytest-timeout scipy pyerrors scikit-learn

# --- run-time environment (exported to every recipe) ---------------------------------
# One thread per rank; a numba cache inside the repo (absolute path: pytest and ranks may
# chdir); no CMA single-copy in Open MPI's shared-memory transport (ptrace is refused in
# containers).
export OMP_NUM_THREADS := 1
export NUMBA_NUM_THREADS := 1
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
export OMPI_MCA_btl_vader_single_copy_mechanism := none

# More ranks than cores is fine for tests (2-core CI runs 4 ranks); root needs consent.
MPIFLAGS := --oversubscribe
ifeq ($(shell id -u),0)
MPIFLAGS += --allow-run-as-root
endif
MPIRUN := mpirun $(MPIFLAGS)

# One BLAS/OpenMP thread per rank (ranks are the parallelism; threaded BLAS oversubscribes the cores:
# measured 20x slower RBM epochs, docs/performance.md). Override on the command line if wanted.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

# Compile (or load) the numba kernels once, serially, before ranks start in parallel.
WARM := $(VPY) -m parallel_qftml.warmup

PYTEST_MPI := $(VPY) -m mpi4py -m pytest --color=no -p no:cacheprovider --with-mpi -q --timeout=600 tests/mpi
# `--table` is a driver: it launches `mpirun -n N` itself for each N in --ranks (default 1,2).
BENCH_ARGS ?= --table

.PHONY: help setup system demo test test-mpi test-unit test-slurm warm bench bench-small bench-io bench-learn info clean distclean

help:
	@echo "make demo       learn S ~ A{4}, sample it, reweight to the complex action on 2 ranks (jobs/demo.sh -> out/demo_*)"
	@echo "make test       MPI tests on 2 and 4 ranks, then serial unit tests"
	@echo "make bench      benchmark table on 1 and 2 ranks (BENCH_ARGS='$(BENCH_ARGS)')"
	@echo "make test-slurm a one-node SLURM cluster runs the job templates (srun, mpirun, requeue)"
	@echo "make bench-small  pqml sample on one rank at L = 4..256, a measurement every sweep, beside C"
	@echo "make bench-learn  one learning epoch at L=256 on 2 ranks, split into its parts"
	@echo "make bench-io   configuration writes vs raw disk speed; checkpoint + restart vs 20 sweeps"
	@echo "make info       versions, MPI library, parallel HDF5"
	@echo "make setup      install everything needed (automatic for the targets above)"
	@echo "make clean      remove out/ and caches;  make distclean  also removes .venv"

# ======================================================================================
# setup
# ======================================================================================
setup: system $(STAMPS)/editable

# Checked on every run (a few ms): MPI compiler, mpirun and parallel HDF5.
ifeq ($(strip $(HDF5_DIR)),)
system:
	@if $(HAVE_SYSTEM); then exit 0; fi
	echo "setup: MPI / parallel HDF5 not found; installing Debian packages: $(APT_PACKAGES)"
	if ! command -v apt-get >/dev/null 2>&1; then
	  echo "setup: error: $(MPICC), mpirun, h5pcc or pkg-config $(HDF5_PKGCONFIG_NAME) missing and no apt-get here; install MPI + parallel HDF5 (or load modules) and set MPICC / HDF5_DIR, see docs/install.md" >&2
	  exit 1
	fi
	if [ "$$(id -u)" = 0 ]; then SUDO=""
	elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
	else
	  echo "setup: error: not root and no sudo: as root run 'apt-get install -y $(APT_PACKAGES)', or load MPI/HDF5 modules and set MPICC / HDF5_DIR (docs/install.md)" >&2
	  exit 1
	fi
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES)
	if ! ( $(HAVE_SYSTEM) ); then
	  echo "setup: error: still missing after apt-get: $(MPICC), mpirun, h5pcc or pkg-config $(HDF5_PKGCONFIG_NAME)" >&2
	  exit 1
	fi
else
# HDF5_DIR given (cluster modules): never apt; just check.
system:
	@if $(HAVE_SYSTEM); then exit 0; fi
	echo "setup: error: HDF5_DIR=$(HDF5_DIR) is set but $(MPICC), mpirun or $(HDF5_DIR)/include/hdf5.h is missing (module not loaded?)" >&2
	exit 1
endif

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMPS)/deps: | $(VPY)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install $(PY_DEPS)
	mkdir -p $(STAMPS) && touch $@

# h5py against MPI-parallel HDF5. --no-build-isolation: build with the venv's mpi4py,
# numpy and Cython; in isolation pip compiles mpi4py from source (34 min, 22 GB).
# --no-cache-dir: never reuse a wheel pip built earlier without MPI.
H5PY_HAS_MPI := $(VPY) -c "import h5py, sys; sys.exit(0 if h5py.get_config().mpi else 1)"
$(STAMPS)/h5py-mpi: $(STAMPS)/deps | system
	if $(H5PY_HAS_MPI) 2>/dev/null; then
	  echo "setup: h5py already built with MPI"
	else
	  if $(VPY) -c "import h5py" 2>/dev/null; then force="--force-reinstall --no-deps"; else force=""; fi
	  echo "setup: building h5py against parallel HDF5 (about a minute)"
	  $(H5PY_ENV) CFLAGS="-O1 -g0" $(PIP) install --no-cache-dir --no-binary=h5py --no-build-isolation $$force h5py
	  $(H5PY_HAS_MPI) || { echo "setup: error: h5py was built without MPI support" >&2; exit 1; }
	fi
	touch $@

$(STAMPS)/editable: $(STAMPS)/h5py-mpi pyproject.toml setup.cfg
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

# ======================================================================================
# demo, test, bench, info
# ======================================================================================
warm: setup
	$(WARM)

demo: setup warm
	PYTHON=$(VPY) MPIRUN="$(MPIRUN)" timeout 900 bash jobs/demo.sh

# Each rank runs pytest (pytest-mpi); rank 0's report is the one that matters.
# The serial unit tests run last, so their summary is the last line.
test: setup warm test-mpi test-unit

test-mpi: setup warm
	timeout 900 $(MPIRUN) -n 2 $(PYTEST_MPI)
	timeout 900 $(MPIRUN) -n 4 $(PYTEST_MPI)

# --durations=10: the ten slowest tests are printed before the summary line (keep make test < 12 min).
test-unit: setup
	$(VPY) -m pytest --color=no -q --timeout=600 --durations=10 tests/unit

# A real one-node Slurm on this machine (as root; installs slurm-wlm and munge if missing,
# starts its own munged/slurmctld/slurmd and stops them again): submits the jobs/*.sbatch
# templates with sbatch and checks their output. See jobs/README.md, "Testing on a real SLURM".
test-slurm: setup
	timeout -k 60 900 bash tests/slurm/run.sh

bench: setup warm
	$(VPY) -m parallel_qftml.bench $(BENCH_ARGS)

# Small lattices: pqml sample on one rank, a measurement every sweep, beside the C reference (issue 12).
bench-small: setup warm
	$(VPY) -m parallel_qftml.bench.small

# I/O: configuration writes vs the raw disk, checkpoint + restart vs 20 sweeps (L = 4096, 2 ranks).
bench-learn: setup warm
	timeout 900 $(MPIRUN) -n 2 $(VPY) -m mpi4py -m parallel_qftml.bench.learn
	timeout 900 $(MPIRUN) -n 2 $(VPY) -m mpi4py -m parallel_qftml.bench.learn --replicas 2

bench-io: setup warm
	timeout 900 $(MPIRUN) -n 2 $(VPY) -m mpi4py -m parallel_qftml.bench.io

info: setup
	$(VENV)/bin/pqml info

# ======================================================================================
clean:
	rm -rf out .numba_cache .pytest_cache build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
