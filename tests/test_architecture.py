"""Where imports may point (docs: design.md, issue 22): the lower rooms know nothing of the higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

SRC = ROOT / "src" / "vidrestore"
# room -> rooms it must never import (at module level or inside a function)
FORBIDDEN = {
    "io": {"pipeline", "selfhvd", "restoration", "bench", "batch", "report", "cli", "metrics", "flow", "models", "synth"},
    "flow": {"pipeline", "selfhvd", "restoration", "bench", "batch", "report", "cli"},
    "metrics": {"pipeline", "selfhvd", "restoration", "bench", "batch", "report", "cli"},
    "models": {"pipeline", "selfhvd", "restoration", "bench", "batch", "report", "cli"},
    "util": {"io", "flow", "metrics", "models", "pipeline", "selfhvd", "restoration", "bench", "batch", "report", "cli",
             "synth"},
    "pipeline": {"selfhvd", "restoration", "bench", "batch", "report", "cli"},
    "synth": {"pipeline", "selfhvd", "restoration", "bench", "batch", "report", "cli"},
    "selfhvd": {"restoration", "bench", "batch", "report", "cli"},
    "batch": {"selfhvd", "restoration", "bench", "report", "cli"},
    "report": {"bench", "batch", "cli"},  # reads finished jobs (records, videos, cached analyses); nothing below knows it
}


def _imported_rooms(path: Path, source: str | None = None) -> set[str]:
    """The vidrestore rooms (top-level subpackages or modules) the module at `path` imports."""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            parts = base + (node.module.split(".") if node.module else [])
            names = [parts] if node.module else [parts + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        rooms |= {p[1] for p in names if len(p) > 1 and p[0] == "vidrestore"}
    return rooms


def _modules(room: str) -> list[Path]:
    return sorted((SRC / room).rglob("*.py"))


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_rooms_import_only_downwards(room):
    bad = {str(p.relative_to(SRC)): sorted(_imported_rooms(p) & FORBIDDEN[room]) for p in _modules(room)}
    assert {k: v for k, v in bad.items() if v} == {}


def test_nothing_imports_the_cli():
    users = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p.name not in ("cli.py", "__main__.py")
             and "cli" in _imported_rooms(p)]
    assert users == []


def test_the_check_sees_relative_and_lazy_imports():
    """The checker itself: relative imports, inside a function too, and absolute ones are found."""
    assert "errors" in _imported_rooms(SRC / "io" / "probe.py")
    source = "import vidrestore.bench\ndef f():\n    from ..pipeline.runner import restore\n    from .. import selfhvd\n"
    assert _imported_rooms(SRC / "metrics" / "any.py", source) == {"bench", "pipeline", "selfhvd"}
