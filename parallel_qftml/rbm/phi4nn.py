"""The phi^4 neural network: a restricted Boltzmann machine built from the phi^4 action (Bachtis, Aarts,
Lucini, PRD 103, 074510 (2021), section "phi^4 neural networks", eqs. 26-28, appendix A.2).

Action (eq. 26-27), W of shape (N_v, N_h), p(phi, h) ∝ exp(-S):

    S(phi, h) = - sum_ij w_ij phi_i h_j + sum_i (r_i phi_i + a_i phi_i^2 + b_i phi_i^4)
                                        + sum_j (s_j h_j + m_j h_j^2 + n_j h_j^4).

Unit kinds (one per layer):
  "gaussian"   continuous, quartic coefficient 0, quadratic > 0;
  "phi4"       continuous, quartic > 0 (any quadratic: a < 0 gives a double well);
  "bernoulli"  values in {-1, +1} (the paper's h_j ∈ {-1, 1}); x^2 = x^4 = 1, so the quadratic and
               quartic coefficients are constants: stored (normally 0), included in S and in the free
               energy, never sampled on or learned.
Presets (paper, below eq. 28): Gaussian-Gaussian (b = n = 0), Gaussian-Bernoulli (b = n = m = 0,
h = ±1), phi4-Bernoulli (m = n = 0, h = ±1) and Bernoulli-Bernoulli (both layers ±1: the Ising limit of
the visible layer that the paper discusses for phi4-Bernoulli).

Conditionals (eqs. A14-A18): given the other layer the units are independent,
    p(phi_i | h) ∝ exp(-(a_i phi^2 + b_i phi^4 + c_i phi)),   c_i = r_i - sum_j w_ij h_j,
    p(h_j | phi) ∝ exp(-(m_j h^2 + n_j h^4 + c_j h)),        c_j = s_j - sum_i phi_i w_ij,
sampled exactly by inversion of the CDF from ONE caller-supplied uniform per unit (kernels/units.py).

Gradient (eqs. A24, A25): d ln p(phi)/d theta = <d(-S)/d theta>_{p(h|phi)} - <d(-S)/d theta>_{p(phi,h)}.
`cd_gradient` returns the gradient of the loss -mean_data ln p, i.e.
    <dS/d theta>_data - <dS/d theta>_model,   (learning/optimizers.py subtracts lr * gradient)
with the model side from k Gibbs steps started at the data (CD-k, eq. A25) or at persistent chains (PCD).

NumPy + the numba kernels only: no MPI, no I/O. Documentation: docs/phi4nn.md.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..kernels import units as _units

KINDS = ("gaussian", "phi4", "bernoulli")
PARAM_NAMES = ("W", "r", "a", "b", "s", "m", "n")
# per layer: (linear, quadratic, quartic) coefficient names
LAYER_PARAMS = {"visible": ("r", "a", "b"), "hidden": ("s", "m", "n")}
PRESETS = {
    "gaussian-gaussian": ("gaussian", "gaussian"),
    "gaussian-bernoulli": ("gaussian", "bernoulli"),
    "bernoulli-bernoulli": ("bernoulli", "bernoulli"),
    "phi4-bernoulli": ("phi4", "bernoulli"),
}
# default initial coefficients of a preset, by kind: (quadratic, quartic)
DEFAULT_COEFFS = {"gaussian": (0.5, 0.0), "phi4": (0.5, 0.1), "bernoulli": (0.0, 0.0)}

UniformsFn = Callable[[tuple, str, int], np.ndarray]


def preset_key(name: str) -> str:
    """Normalise a preset name: 'Gaussian–Bernoulli', 'phi4_bernoulli', 'φ⁴-Bernoulli' ... -> PRESETS key."""
    key = name.strip().lower()
    for ch in ("–", "—", "_", " ", "/"):
        key = key.replace(ch, "-")
    key = key.replace("φ⁴", "phi4").replace("φ4", "phi4").replace("phi^4", "phi4")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return key


def log_partition(kind: str, quad: np.ndarray, quart: np.ndarray, c: np.ndarray) -> np.ndarray:
    """ln ∫ exp(-(quad x^2 + quart x^4 + c x)) dmu(x), elementwise over c of shape (rows, units);
    mu = Lebesgue measure (gaussian, phi4) or counting measure on {-1, +1} (bernoulli).
    gaussian: 1/2 ln(pi/quad) + c^2/(4 quad); bernoulli: ln(2 cosh c) - quad - quart (exact);
    phi4: panel Gauss-Legendre quadrature (kernels/units.py, relative accuracy ~1e-13)."""
    c = np.ascontiguousarray(c, dtype=np.float64)
    if kind == "bernoulli":
        ac = np.abs(c)                       # ln(2 cosh c) = |c| + ln(1 + e^{-2|c|})
        return ac + np.log1p(np.exp(-2.0 * ac)) - (quad + quart)
    if kind == "gaussian":
        return 0.5 * np.log(np.pi / quad) + c * c / (4.0 * quad)
    out = np.empty((4,) + c.shape)
    _units.phi4_moments(np.ascontiguousarray(quad, dtype=np.float64),
                        np.ascontiguousarray(quart, dtype=np.float64), c, out)
    return out[0]


def moments(kind: str, quad: np.ndarray, quart: np.ndarray, c: np.ndarray):
    """(<x>, <x^2>, <x^4>) under exp(-(quad x^2 + quart x^4 + c x)), elementwise (rows, units)."""
    c = np.ascontiguousarray(c, dtype=np.float64)
    if kind == "bernoulli":
        one = np.ones_like(c)
        return -np.tanh(c), one, one
    if kind == "gaussian":
        mu = -c / (2.0 * quad)
        var = np.broadcast_to(1.0 / (2.0 * quad), c.shape)
        mu2 = mu * mu
        return mu, mu2 + var, mu2 * mu2 + 6.0 * mu2 * var + 3.0 * var * var
    out = np.empty((4,) + c.shape)
    _units.phi4_moments(np.ascontiguousarray(quad, dtype=np.float64),
                        np.ascontiguousarray(quart, dtype=np.float64), c, out)
    return out[1], out[2], out[3]


def sample_units(kind: str, quad: np.ndarray, quart: np.ndarray, c: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """One exact sample per element of c (rows, units) from one uniform per element (same shape)."""
    c = np.ascontiguousarray(c, dtype=np.float64)
    u = np.ascontiguousarray(uniforms, dtype=np.float64)
    if u.shape != c.shape:
        raise ValueError(f"uniforms of shape {u.shape}, expected {c.shape} (rows, units): one per unit")
    out = np.empty_like(c)
    if kind == "bernoulli":
        _units.sample_pm1(c, u, out)
    elif kind == "gaussian":
        _units.sample_gaussian(np.ascontiguousarray(quad, dtype=np.float64), c, u, out)
    else:
        _units.sample_phi4(np.ascontiguousarray(quad, dtype=np.float64),
                           np.ascontiguousarray(quart, dtype=np.float64), c, u, out)
    return out


class Phi4NN:
    """phi^4 neural network with parameters `params` = {"W", "r", "a", "b", "s", "m", "n"} (float64 arrays,
    updated in place by optimisers; no cached state) and unit kinds `visible`, `hidden` (KINDS)."""

    def __init__(self, params: dict, visible: str = "phi4", hidden: str = "bernoulli", check: bool = True):
        if visible not in KINDS or hidden not in KINDS:
            raise ValueError(f"unit kinds must be in {KINDS}, got visible={visible!r}, hidden={hidden!r}")
        self.visible, self.hidden = visible, hidden
        W = np.ascontiguousarray(params["W"], dtype=np.float64)
        if W.ndim != 2:
            raise ValueError(f"W must be 2D (N_v, N_h), got shape {W.shape}")
        nv, nh = W.shape
        self.params = {"W": W}
        for name, size in (("r", nv), ("a", nv), ("b", nv), ("s", nh), ("m", nh), ("n", nh)):
            val = params.get(name, 0.0)
            arr = np.ascontiguousarray(np.broadcast_to(np.asarray(val, dtype=np.float64), (size,))).copy()
            self.params[name] = arr
        if check:
            self.check()

    # ----------------------------------------------------------------------------------- construction
    @classmethod
    def preset(cls, name: str, n_visible: int, n_hidden: int, rng: np.random.Generator | None = None,
               weight_scale: float = 0.01, **values) -> "Phi4NN":
        """A preset of the paper (PRESETS; names are normalised by preset_key). W_ij ~ N(0, weight_scale^2),
        linear terms 0, quadratic/quartic terms from DEFAULT_COEFFS (gaussian a = m = 0.5, i.e. unit
        variance at W = 0; phi4 a = 0.5, b = 0.1; bernoulli 0). Any of r, a, b, s, m, n may be given as
        a scalar or array in `values` to override."""
        vis, hid = PRESETS[preset_key(name)]
        rng = np.random.default_rng() if rng is None else rng
        params = {"W": weight_scale * rng.standard_normal((int(n_visible), int(n_hidden))),
                  "r": 0.0, "a": DEFAULT_COEFFS[vis][0], "b": DEFAULT_COEFFS[vis][1],
                  "s": 0.0, "m": DEFAULT_COEFFS[hid][0], "n": DEFAULT_COEFFS[hid][1]}
        for k, v in values.items():
            if k not in PARAM_NAMES:
                raise ValueError(f"unknown parameter {k!r}")
            params[k] = v
        return cls(params, vis, hid)

    def copy(self) -> "Phi4NN":
        return Phi4NN({k: v.copy() for k, v in self.params.items()}, self.visible, self.hidden, check=False)

    @property
    def n_visible(self) -> int:
        return self.params["W"].shape[0]

    @property
    def n_hidden(self) -> int:
        return self.params["W"].shape[1]

    @staticmethod
    def layer_learnable(kind: str, layer: str) -> tuple:
        lin, quad, quart = LAYER_PARAMS[layer]
        return {"gaussian": (lin, quad), "phi4": (lin, quad, quart), "bernoulli": (lin,)}[kind]

    @property
    def learnable(self) -> tuple:
        """Names of the learnable parameters: W, the linear terms, the quadratic term of gaussian and phi4
        layers, the quartic term of phi4 layers."""
        return ("W",) + self.layer_learnable(self.visible, "visible") + self.layer_learnable(self.hidden, "hidden")

    def learnable_params(self) -> dict:
        """{name: array} of the learnable parameters (the same array objects: in-place updates act)."""
        return {k: self.params[k] for k in self.learnable}

    def check(self) -> None:
        """ValueError unless every parameter is finite and each layer's coefficients fit its kind
        (gaussian: quadratic > 0, quartic = 0; phi4: quartic >= 0 with quartic > 0 or quadratic > 0).
        Joint normalisability of Gaussian-Gaussian (the matrix [[2a, -W], [-W^T, 2m]] positive definite)
        is not checked here."""
        for k, v in self.params.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"parameter {k} is not finite")
        for layer, kind in (("visible", self.visible), ("hidden", self.hidden)):
            _, qn, rn = LAYER_PARAMS[layer]
            quad, quart = self.params[qn], self.params[rn]
            if kind == "gaussian" and not (np.all(quad > 0) and np.all(quart == 0)):
                raise ValueError(f"gaussian {layer} units need {qn} > 0 and {rn} = 0")
            if kind == "phi4" and not (np.all(quart >= 0) and np.all((quart > 0) | (quad > 0))):
                raise ValueError(f"phi4 {layer} units need {rn} > 0 (or {rn} = 0 and {qn} > 0)")

    # ----------------------------------------------------------------------------------------- action
    def action(self, v: np.ndarray, h: np.ndarray) -> np.ndarray:
        """S(v, h) per row; v (B, N_v), h (B, N_h)."""
        p = self.params
        v, h = np.atleast_2d(v), np.atleast_2d(h)
        v2, h2 = v * v, h * h
        return (-np.einsum("bi,ij,bj->b", v, p["W"], h) + v @ p["r"] + v2 @ p["a"] + (v2 * v2) @ p["b"]
                + h @ p["s"] + h2 @ p["m"] + (h2 * h2) @ p["n"])

    def visible_field(self, h: np.ndarray) -> np.ndarray:
        """c_i = r_i - sum_j w_ij h_j, shape (B, N_v): p(phi_i | h) ∝ exp(-(a phi^2 + b phi^4 + c_i phi))."""
        return self.params["r"] - np.atleast_2d(h) @ self.params["W"].T

    def hidden_field(self, v: np.ndarray) -> np.ndarray:
        """c_j = s_j - sum_i phi_i w_ij, shape (B, N_h): p(h_j | phi) ∝ exp(-(m h^2 + n h^4 + c_j h))."""
        return self.params["s"] - np.atleast_2d(v) @ self.params["W"]

    # ---------------------------------------------------------------------------------------- sampling
    def sample_hidden(self, v: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """h ~ p(h | v) exactly; v (B, N_v), uniforms in [0, 1) of shape (B, N_h), one per hidden unit."""
        p = self.params
        return sample_units(self.hidden, p["m"], p["n"], self.hidden_field(v), uniforms)

    def sample_visible(self, h: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """v ~ p(v | h) exactly; h (B, N_h), uniforms in [0, 1) of shape (B, N_v), one per visible unit."""
        p = self.params
        return sample_units(self.visible, p["a"], p["b"], self.visible_field(h), uniforms)

    def hidden_moments(self, v: np.ndarray):
        """(<h>, <h^2>, <h^4>) under p(h | v), each (B, N_h)."""
        p = self.params
        return moments(self.hidden, p["m"], p["n"], self.hidden_field(v))

    def visible_moments(self, h: np.ndarray):
        """(<v>, <v^2>, <v^4>) under p(v | h), each (B, N_v)."""
        p = self.params
        return moments(self.visible, p["a"], p["b"], self.visible_field(h))

    def gibbs(self, v: np.ndarray, k: int, uniforms_fn: UniformsFn, step0: int = 0):
        """k block-Gibbs steps v -> h ~ p(h|v) -> v ~ p(v|h). Returns (v_k, h_{k-1}) (h is None if k = 0).
        Uniforms: uniforms_fn((B, N_h), "hidden", t) then uniforms_fn((B, N_v), "visible", t) for
        t = step0, ..., step0 + k - 1."""
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        B = v.shape[0]
        h = None
        for t in range(step0, step0 + k):
            h = self.sample_hidden(v, uniforms_fn((B, self.n_hidden), "hidden", t))
            v = self.sample_visible(h, uniforms_fn((B, self.n_visible), "visible", t))
        return v, h

    # ------------------------------------------------------------------------------------- statistics
    def stats(self, v: np.ndarray, h: np.ndarray) -> dict:
        """Sums over rows of d(-S)/d theta for every learnable theta: W: v^T h, r: -sum v, a: -sum v^2,
        b: -sum v^4, s: -sum h, m: -sum h^2, n: -sum h^4."""
        v, h = np.atleast_2d(v), np.atleast_2d(h)
        h2 = h * h
        return self._stats(v, h, h2, h2 * h2)

    def expected_stats(self, v: np.ndarray) -> dict:
        """As stats(v, h) averaged over h ~ p(h | v) analytically (Rao-Blackwellised: the hidden moments
        are closed forms for gaussian/bernoulli, quadrature for phi4)."""
        v = np.atleast_2d(v)
        h1, h2, h4 = self.hidden_moments(v)
        return self._stats(v, h1, h2, h4)

    def _stats(self, v, h1, h2, h4) -> dict:
        out = {}
        learn = self.learnable
        out["W"] = v.T @ h1
        v2 = v * v
        terms = {"r": v, "a": v2, "s": h1, "m": h2}
        if "b" in learn:
            terms["b"] = v2 * v2
        if "n" in learn:
            terms["n"] = h4
        for k in learn[1:]:
            out[k] = -terms[k].sum(axis=0)
        return out

    # -------------------------------------------------------------------------------------- gradient
    def cd_gradient(self, v_data: np.ndarray, k: int, uniforms_fn: UniformsFn, v_init: np.ndarray | None = None,
                    rao_blackwell: bool = True):
        """Gradient of the loss -mean_rows ln p(v_data) by contrastive divergence (eqs. A24, A25):

            grad[theta] = <dS/dtheta>_data - <dS/dtheta>_model
                        = mean_rows model_stats - mean_rows data_stats      (stats = sums of d(-S)/dtheta).

        Data side: h ~ p(h | v_data). Model side: the chains start at v_init (PCD; any number of rows) or at
        v_data (CD-k), run k Gibbs steps (`gibbs`, steps 0..k-1), and h ~ p(h | v_k). With rao_blackwell
        (default) both hidden sides use the exact conditional moments (expected_stats) instead of a
        sample, which lowers the variance and leaves the expectation unchanged; otherwise the hidden
        samples use uniforms_fn((B, N_h), "hidden", -1) (data) and uniforms_fn((B', N_h), "hidden", k)
        (model). Returns (grad dict over self.learnable, v_k) - v_k is the new persistent state."""
        v_data = np.atleast_2d(np.asarray(v_data, dtype=np.float64))
        if v_data.shape[1] != self.n_visible:
            raise ValueError(f"v_data has {v_data.shape[1]} columns, expected N_v = {self.n_visible}")
        start = v_data if v_init is None else np.atleast_2d(np.asarray(v_init, dtype=np.float64))
        vk, _ = self.gibbs(start, int(k), uniforms_fn)
        if rao_blackwell:
            sd = self.expected_stats(v_data)
            sm = self.expected_stats(vk)
        else:
            hd = self.sample_hidden(v_data, uniforms_fn((v_data.shape[0], self.n_hidden), "hidden", -1))
            hm = self.sample_hidden(vk, uniforms_fn((vk.shape[0], self.n_hidden), "hidden", int(k)))
            sd = self.stats(v_data, hd)
            sm = self.stats(vk, hm)
        nd, nm = v_data.shape[0], vk.shape[0]
        grad = {name: sm[name] / nm - sd[name] / nd for name in self.learnable}
        return grad, vk

    # ----------------------------------------------------------------------------------- free energy
    def free_energy(self, v: np.ndarray) -> np.ndarray:
        """F(v) = -ln ∫ exp(-S(v, h)) dh per row, so that p(v) = exp(-F(v)) / Z with Z = ∫ exp(-F) dv:

            F(v) = sum_i (r_i v_i + a_i v_i^2 + b_i v_i^4) - sum_j ln Z_j(c_j),   c_j = s_j - sum_i v_i w_ij,
            bernoulli (±1) hidden:  ln Z_j = ln(2 cosh c_j) - m_j - n_j            (exact),
            gaussian hidden:        ln Z_j = 1/2 ln(pi / m_j) + c_j^2 / (4 m_j)     (exact),
            phi4 hidden:            ln Z_j by quadrature (kernels/units.py, relative error ~1e-13)."""
        p = self.params
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        v2 = v * v
        vis = v @ p["r"] + v2 @ p["a"] + (v2 * v2) @ p["b"]
        return vis - log_partition(self.hidden, p["m"], p["n"], self.hidden_field(v)).sum(axis=1)
