"""Scalar-field (Gaussian-Gaussian) restricted Boltzmann machine of Aarts, Lucini and Park,
PRD 109, 034521 (2024), "Scalar field restricted Boltzmann machine as an ultraviolet regulator".

* `parallel_qftml.rbm.gaussian`: the model (eqs. 7-9), its spectrum (eqs. 32-33), the closed-form KL
  divergence (appendix B), the log-likelihood gradients (eqs. 20-22), the conditional samplers, the exact
  solutions for a Gaussian target (eqs. 12-16) and the free-field target kernels (eqs. 77, 82-83).
* `parallel_qftml.rbm.train_gaussian`: a serial training loop (exact gradient or persistent contrastive
  divergence, appendix A) built from pure functions that a distributed driver can reuse.

NumPy only: no MPI, no file I/O. Documentation: docs/rbm.md.
"""
