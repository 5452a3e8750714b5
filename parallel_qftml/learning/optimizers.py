"""Optimisers and learning-rate schedules (elementwise NumPy: the same bits on every rank layout).

theta(t+1) = theta(t) - eta(t) * step(L), eq. 13 of the paper, with L the gradient of the loss.
* sgd:      step = L
* momentum: v = mu v + L;  step = v                       (heavy ball, PyTorch convention)
* adam:     m = b1 m + (1 - b1) L,  v = b2 v + (1 - b2) L^2,
            step = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)        (Kingma & Ba 2015)
Schedules of eta(epoch): constant; step (eta0 * decay^floor(epoch / decay_every), the RBM paper's
"factor r every N epochs"); exponential (eta0 * decay^epoch); inverse (eta0 / (1 + epoch / decay_every)).
The state (slot arrays per parameter and the step counter t) is saved in checkpoints.
"""
from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "exponential", "inverse")


def learning_rate(lr: float, schedule: str, epoch: int, decay: float, decay_every: int) -> float:
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * decay ** (epoch // decay_every)
    if schedule == "exponential":
        return lr * decay ** epoch
    if schedule == "inverse":
        return lr / (1.0 + epoch / decay_every)
    raise ValueError(f"unknown schedule {schedule!r}")


class Optimizer:
    """Updates the parameter arrays `params[name]` in place from gradients of the same shapes."""

    SLOTS = {"sgd": (), "momentum": ("v",), "adam": ("m", "v")}

    def __init__(self, kind: str, params: dict, momentum: float = 0.9, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind, self.momentum, self.beta1, self.beta2, self.eps = kind, momentum, beta1, beta2, eps
        self.t = 0
        self.slots = {f"{s}_{name}": np.zeros_like(p) for name, p in params.items() for s in self.SLOTS[kind]}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """One update of every parameter in `grads` (contiguous arrays; kernels/optimizers.py)."""
        from ..kernels import optimizers as K
        self.t += 1
        c1, c2 = 1.0 - self.beta1 ** self.t, 1.0 - self.beta2 ** self.t
        for name, g in grads.items():
            p = params[name].reshape(-1)
            g = np.ascontiguousarray(g).reshape(-1)
            if self.kind == "sgd":
                K.sgd(p, g, lr)
            elif self.kind == "momentum":
                K.momentum(p, g, self.slots[f"v_{name}"].reshape(-1), self.momentum, lr)
            else:
                K.adam(p, g, self.slots[f"m_{name}"].reshape(-1), self.slots[f"v_{name}"].reshape(-1),
                       self.beta1, self.beta2, c1, c2, self.eps, lr)
