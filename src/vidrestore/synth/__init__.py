"""Synthetic clips and degradations for tests, benchmarks and self-supervision."""
