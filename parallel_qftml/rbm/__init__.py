"""Restricted Boltzmann machines with continuous fields.

Scalar-field (Gaussian-Gaussian) RBM of Aarts, Lucini and Park, PRD 109, 034521 (2024), "Scalar field
restricted Boltzmann machine as an ultraviolet regulator" (docs/rbm.md):

* `parallel_qftml.rbm.gaussian`: the model (eqs. 7-9), its spectrum (eqs. 32-33), the closed-form KL
  divergence (appendix B), the log-likelihood gradients (eqs. 20-22), the conditional samplers, the exact
  solutions for a Gaussian target (eqs. 12-16) and the free-field target kernels (eqs. 77, 82-83);
  NumPy only, no MPI, no file I/O.
* `parallel_qftml.rbm.train_gaussian`: a serial training loop (exact gradient or persistent contrastive
  divergence, appendix A) built from pure functions that a distributed driver can reuse.
* `config`, `trainer`, `driver`: the MPI-parallel `pqml rbm CONFIG` command built on `gaussian`.

The phi^4 neural network of Bachtis, Aarts, Lucini (PRD 103, 074510): `parallel_qftml.rbm.phi4nn`
(docs/phi4nn.md).
"""
