"""Learning the couplings of the phi^4 MRF by minimising a KL divergence (docs/learning.md)."""
