"""The Gaussian-Gaussian (scalar-field) RBM of Aarts, Lucini, Park, PRD 109, 034521 (2024), "the paper".

Action (eq. 7), W of shape (N_v, N_h):

    S(phi, h) = 1/2 mu2 phi^T phi + (h - eta)^T (h - eta) / (2 sigma_h2) - phi^T W h.

Integrating out h (eqs. 8, 9): p(phi) ∝ exp(-1/2 phi^T K phi + phi^T J) with

    K = mu2 1 - sigma_h2 W W^T,        J = W eta,

so <phi> = K^-1 J and the connected two-point function is K^-1 (eq. 11). Conditionals (from eq. 7):

    h   | phi ~ N(eta + sigma_h2 W^T phi, sigma_h2 1),       phi | h ~ N(W h / mu2, 1/mu2 1).

Spectrum (eqs. 31-33): with W = U Xi V^T (singular values xi_1 >= xi_2 >= ...), K = U D_K U^T and the
RBM eigenvalues are lambda_a = mu2 - sigma_h2 xi_a^2 (a <= min(N_v, N_h)) plus N_v - N_h copies of mu2.
The model exists iff lambda_min = mu2 - sigma_h2 xi_1^2 > 0; otherwise `NotPositiveDefinite` is raised by
everything that needs K^-1.

Log-likelihood gradients (eqs. 20-22, ascent directions; C = <phi phi^T>, eq. 21):

    dL/dW   = sigma_h2 (C_target - C_model) W,
    dL/dmu2 = -1/2 sum_i (<phi_i^2>_target - <phi_i^2>_model).

The `gradient_*` methods return the *descent* gradient -dL/dtheta (learning/optimizers.py minimises),
which is also dKL(p_target || p_model)/dtheta (eq. 24). For eta != 0 the W gradient gets the extra term
(<phi>_target - <phi>_model) eta^T of d(phi^T W eta)/dW; the paper has eta = 0 throughout.

NumPy only: no MPI, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class NotPositiveDefinite(ValueError):
    """The model kernel K = mu2 1 - sigma_h2 W W^T is not positive definite (the RBM does not exist)."""


# ============================================================================================= the model
@dataclass
class GaussianRBM:
    """Scalar-field RBM; the fields are public and may be reassigned (no cached state).

    W is stored as a C-contiguous float64 array (the optimisers update it in place through a view)."""

    n_visible: int
    n_hidden: int
    W: np.ndarray
    mu2: float
    sigma_h2: float = 1.0
    eta: np.ndarray = field(default=None)

    def __post_init__(self):
        self.n_visible, self.n_hidden = int(self.n_visible), int(self.n_hidden)
        self.W = np.ascontiguousarray(self.W, dtype=np.float64)
        if self.W.shape != (self.n_visible, self.n_hidden):
            raise ValueError(f"W has shape {self.W.shape}, expected (n_visible, n_hidden) = "
                             f"({self.n_visible}, {self.n_hidden})")
        self.mu2, self.sigma_h2 = float(self.mu2), float(self.sigma_h2)
        if not self.sigma_h2 > 0:
            raise ValueError(f"sigma_h2 = {self.sigma_h2} must be > 0")
        self.eta = np.zeros(self.n_hidden) if self.eta is None else np.asarray(self.eta, dtype=np.float64)
        if self.eta.shape != (self.n_hidden,):
            raise ValueError(f"eta has shape {self.eta.shape}, expected ({self.n_hidden},)")

    @classmethod
    def from_weights(cls, W, mu2: float, sigma_h2: float = 1.0, eta=None) -> "GaussianRBM":
        W = np.asarray(W, dtype=np.float64)
        return cls(W.shape[0], W.shape[1], W, mu2, sigma_h2, eta)

    @classmethod
    def random(cls, n_visible: int, n_hidden: int, mu2: float, sigma_h2: float = 1.0, std: float = 0.1,
               rng: np.random.Generator | None = None) -> "GaussianRBM":
        """W_ia ~ N(0, std^2) (the paper's N(0, 0.1) initialisation, Sec. V B: std = 0.1), eta = 0."""
        rng = np.random.default_rng() if rng is None else rng
        return cls(n_visible, n_hidden, std * rng.standard_normal((n_visible, n_hidden)), mu2, sigma_h2)

    def copy(self) -> "GaussianRBM":
        return GaussianRBM(self.n_visible, self.n_hidden, self.W.copy(), self.mu2, self.sigma_h2, self.eta.copy())

    # ------------------------------------------------------------------------------------- spectrum
    def kernel(self) -> np.ndarray:
        """K = mu2 1 - sigma_h2 W W^T (eq. 9)."""
        K = -self.sigma_h2 * (self.W @ self.W.T)
        K[np.diag_indices(self.n_visible)] += self.mu2
        return K

    def source(self) -> np.ndarray:
        """J = W eta (eq. 9)."""
        return self.W @ self.eta

    def singular_values(self) -> np.ndarray:
        """xi_1 >= xi_2 >= ... >= 0, min(N_v, N_h) values (eq. 31); NaN if W is not finite."""
        if not np.all(np.isfinite(self.W)):
            return np.full(min(self.W.shape), np.nan)
        return np.linalg.svd(self.W, compute_uv=False)

    def _svd(self):
        """(U_r, xi, lam_r): reduced left singular vectors, singular values and lambda = mu2 - sigma_h2 xi^2."""
        U, xi, _ = np.linalg.svd(self.W, full_matrices=False)
        return U, xi, self.mu2 - self.sigma_h2 * xi * xi

    def eigenvalues(self, xi: np.ndarray | None = None) -> np.ndarray:
        """RBM eigenvalues lambda_alpha of K in ascending order (eqs. 33, 84): mu2 - sigma_h2 xi_a^2 and
        N_v - min(N_v, N_h) copies of mu2. Never raises (a non-positive lambda_1 is returned as is, NaN for a
        non-finite W). xi: the singular values of the current W if already computed (saves an SVD)."""
        xi = self.singular_values() if xi is None else xi
        if np.any(np.isnan(xi)):
            return np.full(self.n_visible, np.nan)
        lam = np.full(self.n_visible, self.mu2)
        lam[:xi.size] = self.mu2 - self.sigma_h2 * xi * xi
        return np.sort(lam)

    def lambda_min(self) -> float:
        """The lowest eigenvalue of K, min(mu2 - sigma_h2 xi_1^2, mu2) (> 0 iff the model exists)."""
        return float(self.eigenvalues()[0])

    def check_positive_definite(self) -> None:
        """Raise NotPositiveDefinite unless K is positive definite and all parameters are finite."""
        if not (np.isfinite(self.mu2) and np.all(np.isfinite(self.W))):
            raise NotPositiveDefinite(f"the RBM parameters are not finite (mu2 = {self.mu2})")
        lam = self.lambda_min()
        if not lam > 0:
            xi1 = float(self.singular_values()[0]) if self.W.size else 0.0
            raise NotPositiveDefinite(
                f"the RBM kernel K = mu2 - sigma_h2 W W^T is not positive definite: lowest eigenvalue "
                f"{lam:.6g} (mu2 = {self.mu2:.6g}, sigma_h2 xi_1^2 = {self.sigma_h2 * xi1 * xi1:.6g}); "
                f"the model needs mu2 > sigma_h2 xi_1^2 (paper eq. 33)")

    def covariance(self) -> np.ndarray:
        """Connected two-point function K^-1 (eq. 11), from the SVD of W:
        K^-1 = 1/mu2 + U_r diag(1/lambda_a - 1/mu2) U_r^T. Raises NotPositiveDefinite."""
        self.check_positive_definite()
        U, _, lam = self._svd()
        C = (U * (1.0 / lam - 1.0 / self.mu2)) @ U.T
        C[np.diag_indices(self.n_visible)] += 1.0 / self.mu2
        return C

    def mean(self) -> np.ndarray:
        """<phi> = K^-1 J (zero for eta = 0)."""
        if not np.any(self.eta):
            return np.zeros(self.n_visible)
        return self.covariance() @ self.source()

    def second_moment(self) -> np.ndarray:
        """C_model = <phi phi^T>_model = K^-1 + <phi><phi>^T (eq. 21)."""
        C = self.covariance()
        if np.any(self.eta):
            m = C @ self.source()
            C = C + np.outer(m, m)
        return C

    def logdet_kernel(self) -> float:
        """ln det K = sum_alpha ln lambda_alpha. Raises NotPositiveDefinite."""
        self.check_positive_definite()
        return float(np.sum(np.log(self.eigenvalues())))

    # ------------------------------------------------------------------------------------------ KL
    def kl_to(self, target_kernel: np.ndarray, target_mean: np.ndarray | None = None) -> float:
        """KL(p_target || p_model) for the Gaussian target N(target_mean, target_kernel^-1) (mean 0 if None):

            KL = 1/2 [ tr(K K_t^-1) - N_v - ln det(K K_t^-1) + (m_t - m)^T K (m_t - m) ],

        the standard Gaussian KL. In a common eigenbasis (a_i of K_t, b_i of K) and without means it is
        eq. (B7) of the paper, KL = 1/2 sum_i (b_i/a_i - 1 - ln(b_i/a_i)) >= 0; the general form is needed
        during training, when the model's eigenbasis has not yet aligned with the target's.
        Raises NotPositiveDefinite for a non-PD model, ValueError for a non-PD target kernel."""
        Kt = np.asarray(target_kernel, dtype=np.float64)
        if Kt.shape != (self.n_visible, self.n_visible):
            raise ValueError(f"target kernel of shape {Kt.shape}, expected {(self.n_visible,) * 2}")
        try:
            Lt = np.linalg.cholesky(Kt)
        except np.linalg.LinAlgError:
            raise ValueError("the target kernel is not positive definite") from None
        logdet_t = 2.0 * float(np.sum(np.log(np.diag(Lt))))
        Ct = np.linalg.inv(Kt)
        return self._kl(Ct, logdet_t, target_mean)

    def kl_from_covariance(self, target_covariance: np.ndarray, target_mean: np.ndarray | None = None) -> float:
        """As kl_to, with the target given by its (connected) covariance C_t = K_t^-1 (e.g. from data)."""
        Ct = np.asarray(target_covariance, dtype=np.float64)
        try:
            Lc = np.linalg.cholesky(Ct)
        except np.linalg.LinAlgError:
            raise ValueError("the target covariance is not positive definite") from None
        return self._kl(Ct, -2.0 * float(np.sum(np.log(np.diag(Lc)))), target_mean)

    def _kl(self, Ct: np.ndarray, logdet_Kt: float, target_mean, xi: np.ndarray | None = None) -> float:
        """KL(N(m_t, Ct) || model) given ln det K_t; xi: the singular values of the current W if known."""
        lam = None if xi is None else self.mu2 - self.sigma_h2 * xi * xi
        if lam is None or not (np.isfinite(self.mu2) and np.all(np.isfinite(lam)) and min(self.mu2, *lam) > 0):
            self.check_positive_definite()          # raises NotPositiveDefinite unless K > 0
            xi = self.singular_values()
            lam = self.mu2 - self.sigma_h2 * xi * xi
        # tr(K C_t) = mu2 tr C_t - sigma_h2 tr(W^T C_t W)
        tr = self.mu2 * float(np.trace(Ct)) - self.sigma_h2 * float(np.sum(self.W * (Ct @ self.W)))
        lam_all = np.full(self.n_visible, self.mu2)
        lam_all[:lam.size] = lam
        logdet_K = float(np.sum(np.log(lam_all)))
        kl = 0.5 * (tr - self.n_visible - logdet_K + logdet_Kt)
        mt = np.zeros(self.n_visible) if target_mean is None else np.asarray(target_mean, dtype=np.float64)
        if np.any(mt) or np.any(self.eta):
            d = mt - self.mean()
            kl += 0.5 * float(d @ self.kernel() @ d)
        return kl

    # ----------------------------------------------------------------------------------- gradients
    def _gradient(self, C_target, C_model, mean_target, mean_model) -> dict:
        C_target = np.asarray(C_target, dtype=np.float64)
        if C_target.shape != (self.n_visible, self.n_visible):
            raise ValueError(f"C_target of shape {C_target.shape}, expected {(self.n_visible,) * 2}")
        D = C_target - C_model
        gW = -self.sigma_h2 * (D @ self.W)                                   # -dL/dW, eq. 20
        if np.any(self.eta):
            mt = np.zeros(self.n_visible) if mean_target is None else np.asarray(mean_target, dtype=np.float64)
            gW -= np.outer(mt - mean_model, self.eta)
        g_mu2 = 0.5 * float(np.trace(D))                                      # -dL/dmu2, eq. 22
        return {"W": gW, "mu2": g_mu2}

    def gradient_exact(self, C_target: np.ndarray, target_mean: np.ndarray | None = None) -> dict:
        """{"W": -dL/dW, "mu2": -dL/dmu2} (eqs. 20-22) with the exact C_model = K^-1 (+ <phi><phi>^T if eta != 0).
        C_target = <phi phi^T>_target (eq. 21). Raises NotPositiveDefinite."""
        return self._gradient(C_target, self.second_moment(), target_mean, self.mean())

    def gradient_from_samples(self, C_target: np.ndarray, phi_model: np.ndarray,
                              target_mean: np.ndarray | None = None) -> dict:
        """As gradient_exact with C_model = phi^T phi / n estimated from model samples phi (n, N_v), e.g. the
        persistent chains of PCD (appendix A). Raises NotPositiveDefinite if the samples are not finite."""
        phi = np.atleast_2d(np.asarray(phi_model, dtype=np.float64))
        if phi.shape[1] != self.n_visible:
            raise ValueError(f"phi_model of shape {phi.shape}, expected (n, {self.n_visible})")
        if not np.all(np.isfinite(phi)):
            raise NotPositiveDefinite("the model samples are not finite (the chains diverged: the RBM kernel "
                                      "was not positive definite)")
        return self._gradient(C_target, phi.T @ phi / phi.shape[0], target_mean, phi.mean(axis=0))

    # ------------------------------------------------------------------------------------- sampling
    def sample_hidden(self, phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """h ~ p(h | phi) = N(eta + sigma_h2 W^T phi, sigma_h2 1), row-wise: phi (n, N_v) -> h (n, N_h)
        (a 1D phi gives a 1D h)."""
        phi = np.asarray(phi, dtype=np.float64)
        mean = self.eta + self.sigma_h2 * (phi @ self.W)
        return mean + np.sqrt(self.sigma_h2) * rng.standard_normal(mean.shape)

    def sample_visible(self, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """phi ~ p(phi | h) = N(W h / mu2, 1/mu2 1), row-wise: h (n, N_h) -> phi (n, N_v)."""
        if not self.mu2 > 0:
            raise NotPositiveDefinite(f"p(phi | h) needs mu2 > 0 (mu2 = {self.mu2})")
        h = np.asarray(h, dtype=np.float64)
        mean = (h @ self.W.T) / self.mu2
        return mean + rng.standard_normal(mean.shape) / np.sqrt(self.mu2)

    def gibbs(self, phi: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """k block-Gibbs steps phi -> h -> phi of every row (the PCD update). The phi chain is the AR(1)
        process phi' = A phi + noise with A = sigma_h2 W W^T / mu2, eigenvalues 1 - lambda_alpha / mu2, so it
        converges iff K is positive definite; mode alpha decorrelates as (1 - lambda_alpha/mu2)^k."""
        for _ in range(int(k)):
            phi = self.sample_visible(self.sample_hidden(phi, rng), rng)
        return phi

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n independent exact draws of p(phi) (n, N_v), via the Cholesky factor of K^-1."""
        L = np.linalg.cholesky(self.covariance())
        return self.mean() + rng.standard_normal((int(n), self.n_visible)) @ L.T


# ========================================================================= exact solutions, eqs. 12-16
def _rhs(K_phi, mu2: float, sigma_h2: float) -> np.ndarray:
    """The matrix calK = (mu2 1 - K_phi) / sigma_h2 of eq. 13, after the check of eq. 14."""
    K_phi = np.asarray(K_phi, dtype=np.float64)
    if K_phi.ndim != 2 or K_phi.shape[0] != K_phi.shape[1]:
        raise ValueError(f"K_phi must be a square matrix, got shape {K_phi.shape}")
    if not np.allclose(K_phi, K_phi.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(K_phi).max()))):
        raise ValueError("K_phi must be symmetric")
    if not sigma_h2 > 0:
        raise ValueError(f"sigma_h2 = {sigma_h2} must be > 0")
    kmax = float(np.linalg.eigvalsh(K_phi)[-1])
    tol = 1e-12 * max(1.0, abs(kmax))
    if mu2 < kmax - tol:
        raise ValueError(f"no exact RBM solution: mu2 = {mu2:.6g} is below the largest eigenvalue "
                         f"{kmax:.6g} of K_phi (paper eq. 14 needs mu2 >= max eig K_phi)")
    calK = (np.diag(np.full(K_phi.shape[0], float(mu2))) - K_phi) / sigma_h2
    return 0.5 * (calK + calK.T)


def _cholesky_psd(A: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L^T = A for a positive *semi*definite A (zero pivots give zero columns)."""
    n = A.shape[0]
    L = np.zeros_like(A)
    tol = 1e-12 * max(1.0, float(np.abs(np.diag(A)).max()))
    for j in range(n):
        d = A[j, j] - L[j, :j] @ L[j, :j]
        if d <= tol:
            continue                                   # PSD: the rest of this column vanishes too
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (A[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


def exact_cholesky(K_phi, mu2: float, sigma_h2: float = 1.0) -> np.ndarray:
    """W = L, the lower-triangular Cholesky factor of calK = (mu2 - K_phi)/sigma_h2 (eq. 13, solution (1) of
    Sec. II): then mu2 - sigma_h2 W W^T = K_phi exactly, N_h = N_v. ValueError if mu2 < max eig K_phi (eq. 14);
    for mu2 = max eig K_phi (calK singular) a semidefinite Cholesky factor is returned."""
    A = _rhs(K_phi, mu2, sigma_h2)
    try:
        return np.ascontiguousarray(np.linalg.cholesky(A))
    except np.linalg.LinAlgError:
        return _cholesky_psd(A)


def exact_symmetric(K_phi, mu2: float, sigma_h2: float = 1.0) -> np.ndarray:
    """W = W^T = O sqrt(D) O^T with calK = O D O^T (eqs. 15, 16), N_h = N_v. ValueError if mu2 < max eig K_phi."""
    A = _rhs(K_phi, mu2, sigma_h2)
    d, O = np.linalg.eigh(A)
    W = (O * np.sqrt(np.clip(d, 0.0, None))) @ O.T
    return np.ascontiguousarray(0.5 * (W + W.T))


# ================================================================================== free-field targets
def _shape(shape) -> tuple:
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(L) for L in shape)
    if not shape or any(L < 1 for L in shape):
        raise ValueError(f"lattice shape {shape} must have at least one extent, each >= 1")
    return shape


def free_field_kernel(shape, m2: float) -> np.ndarray:
    """Target kernel of the free lattice scalar field on a periodic lattice of any dimension d (eqs. 77, 83):

        K_phi = (m2 + 2d) 1 - sum_mu (T_{+mu} + T_{-mu}),

    T_{+-mu} the periodic shifts; sites flattened in C order (i = ravel_multi_index(x, shape)). An axis of
    extent 2 (1) gets -2 (+2-2 = 0) from the two coinciding shifts, exactly as the eigenvalue formula says."""
    shape = _shape(shape)
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    K = np.diag(np.full(n, float(m2) + 2.0 * len(shape)))
    for mu in range(len(shape)):
        fwd = np.roll(idx, -1, axis=mu).ravel()         # index of x + e_mu at position x
        np.add.at(K, (idx.ravel(), fwd), -1.0)
        np.add.at(K, (fwd, idx.ravel()), -1.0)
    return K


def free_field_eigenvalues(shape, m2: float) -> np.ndarray:
    """kappa_k = m2 + sum_mu (2 - 2 cos(2 pi n_mu / L_mu)) (eqs. 78, 82), ascending, one per site."""
    shape = _shape(shape)
    p2 = np.zeros(shape)
    for mu, L in enumerate(shape):
        s = [1] * len(shape)
        s[mu] = L
        p2 = p2 + (2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(L) / L)).reshape(s)
    return np.sort(float(m2) + p2.ravel())


def correlation_from_data(phi: np.ndarray) -> np.ndarray:
    """C_target = 1/N_conf sum_d phi^(d) phi^(d)^T (eq. 21), phi of shape (N_conf, N_v)."""
    phi = np.atleast_2d(np.asarray(phi, dtype=np.float64))
    return phi.T @ phi / phi.shape[0]
