"""The HDF5 schema: every dataset and attribute name, shape and dtype (docs/schema.md).

Measurement file (output.path), SCHEMA_VERSION 2:
    /observables/<name>   float64 (n_meas, n_replicas), one row per measurement, chunked, growing
    /observables/sweep    int64 (n_meas,)  sweep count after each measurement (dimension scale)
    /configs/phi          float64 (n_saved, n_replicas, *global_shape), chunk = one replica's field
    /configs/sweep        int64 (n_saved,)  sweep count of each saved configuration (dimension scale)
    /couplings/w          float64 (d, *global_shape)  w[mu, x] couples x and x + e_mu
    /couplings/a, b, r    float64 global_shape;  attribute w_nnn on /couplings
    root attributes       ROOT_ATTRS, delta (n_replicas,), n_colours, backend, schema_version,
                          complete (True only after a run finished)
Checkpoint file (checkpoint.dir/ckpt-<sweep>.h5):
    /phi                  float64 (n_replicas, *global_shape)
    /couplings/...        as above
    attributes            CKPT_ATTRS and checksum:<dataset> (uint64, layout-independent)
"""
import numpy as np

SCHEMA_VERSION = 2

OBSERVABLES = "observables"
SWEEP = "sweep"
REPLICA = "replica"       # coordinate datasets replica, x0, x1, ..., axis: dimension scales of every axis
CONFIGS = "configs"
PHI = "phi"
COUPLINGS = "couplings"
SITE_COUPLINGS = ("a", "b", "r")     # /couplings/<name>, shape = lattice shape (w is separate)
ATTR_W_NNN = "w_nnn"

# the keys of Sampler.measure(), in file order
OBSERVABLE_NAMES = ("action", "nn", "nnn", "phi2", "phi4", "phi1", "m", "abs_m", "acceptance")
OBS_CHUNK_ROWS = 1024

ATTR_SCHEMA_VERSION = "schema_version"
ATTR_COMPLETE = "complete"
ATTR_DELTA = "delta"
ATTR_N_COLOURS = "n_colours"
ATTR_BACKEND = "backend"
ROOT_ATTRS = ("run_id", "config_text", "config_sha256", "physics_sha256", "config_overrides", "package_version",
              "seed", "global_shape", "proc_grid", "n_replicas", "n_ranks", "created", "python_version",
              "numpy_version", "numba_version", "h5py_version", "mpi_vendor", "mpi4py_version")

CKPT_PREFIX = "ckpt-"
CKPT_SUFFIX = ".h5"
CKPT_ATTRS = ("sweep_count", "delta", "n_meas", "n_saved", "physics_sha256", "config_text",
              "package_version", "created", "n_ranks_written", "run_id")
ATTR_RUN_ID = "run_id"        # random id of a run, in its file and in each of its checkpoints
CHECKSUM_PREFIX = "checksum:"

MAX_CHUNK_BYTES = 2 ** 30      # HDF5 chunks must stay below 4 GiB; 1 GiB keeps memory per write modest


def field_chunks(shape: tuple, lead: int) -> tuple:
    """Chunk shape for a dataset of fields: 1 along the `lead` leading axes (saved index, replica,
    component), then one whole field, halved along its slowest axes until it fits MAX_CHUNK_BYTES."""
    chunk = [1] * lead + list(shape[lead:])
    ax = lead
    while 8 * int(np.prod(chunk)) > MAX_CHUNK_BYTES:
        if chunk[ax] == 1:
            ax += 1
            continue
        chunk[ax] = (chunk[ax] + 1) // 2
    return tuple(chunk)

# Learning file (pqml learn, output.path): the measurement-file root attributes and /couplings (the
# current couplings, rewritten at every checkpoint and at the end), plus
#     /learning/epoch         int64 (n_epochs,)      epochs done after each row (dimension scale)
#     /learning/<series>      float64 (n_epochs,)    LEARN_SERIES + per-coupling statistics
#     /learning/snapshots/{w,a,b,r}  float64 (n_snap, ...) couplings every output.save_every epochs
#     /learning/snapshots/epoch      int64 (n_snap,)
#     /learning/gradients/{epoch,w,a,b,r}  the gradient of the last update before each snapshot
#     /learning/reference_ti/<TI_SERIES>  float64 (n_nodes,) KL(reference || target) by thermodynamic
#                             integration ([reference] estimator = "ti"), attributes TI_ATTRS
#     /learning/final_ti/<TI_SERIES>      the same for KL(p_S || q_A) of the final S (learn.final_kl = "ti"),
#                             attributes TI_ATTRS + epoch
# Learning checkpoint: /chains/phi (n_chains, *shape), /reference/phi (n_ref, *shape), /couplings/...,
# /optimizer/<slot>_<param> (global shapes of the parameter), attributes LEARN_CKPT_ATTRS.
LEARNING = "learning"
EPOCH = "epoch"
SNAPSHOTS = "learning/snapshots"
GRADIENTS = "learning/gradients"     # the gradient L of the last update before each snapshot, same layout
LEARN_SERIES = ("lr", "kl", "kl_err", "kl_ref", "kl_ref_err", "acceptance", "delta", "grad_norm",
                "kl_ess", "kl_lsw", "kl_ref_ess", "kl_ref_lsw")   # ESS and ln sum e^{S-A} of each KL estimate
REFERENCE_TI = "learning/reference_ti"
FINAL_TI = "learning/final_ti"
TI_SERIES = ("t", "mean", "mean_err", "tau", "acceptance")     # per node, t = 0 first (learning/thermo.py)
TI_ATTRS = ("value", "stat_err", "quad_err", "gauss_value", "n_gauss", "n_samples")
COUPLING_STATS = ("mean", "std", "grad_norm")     # /learning/<stat>_<w|a|b|r>
CHAINS_PHI = "chains/phi"
REFERENCE_PHI = "reference/phi"
OPTIMIZER = "optimizer"
LEARN_CKPT_ATTRS = ("epoch", "optimizer_t", "sweep_count", "delta", "ref_sweep_count", "ref_delta", "n_rows",
                    "n_snap", "physics_sha256", "config_text", "run_id")


def learn_series_names() -> tuple:
    return LEARN_SERIES + tuple(f"{s}_{p}" for s in COUPLING_STATS for p in ("w", *SITE_COUPLINGS))
