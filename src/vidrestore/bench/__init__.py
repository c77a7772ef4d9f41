"""Benchmark suites: run restoration methods over clips as a user would, score them, tabulate.

`load_suite(path)` reads a TOML suite (format in `vidrestore.bench.suite`), `run_suite(suite,
out_dir)` runs it and writes results.md / results.json / per-frame CSVs. Methods are registered
with `register_method` (see `vidrestore.bench.methods`); `list_methods()` names them.
"""

from .methods import Method, MethodCall, list_methods, register_method, stage_method
from .runner import ClipResult, MethodResult, run_suite
from .suite import Suite, load_suite

__all__ = ["ClipResult", "Method", "MethodCall", "MethodResult", "Suite", "list_methods", "load_suite",
           "register_method", "run_suite", "stage_method"]
