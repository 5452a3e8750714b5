"""Output files of the package (HDF5)."""
