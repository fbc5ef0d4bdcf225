"""Tiny random checkpoints of the real architectures, for tests and the offline demo (no download needed)."""
