"""Benchmarks of presence-sim, run on demand by `make bench`."""
