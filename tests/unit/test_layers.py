"""The arrows of DESIGN.md that imports can show: api/ sees the engine only through the engine package's
public names, never chat/ or an engine module; only engine/ imports llama_cpp; protocol/ imports no api/."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "llamaserve"


def _imports(package: str) -> list[tuple[str, str]]:
    out = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out += [(path.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out += [(path.name, node.module)]
    return out


def test_api_sees_the_engine_through_its_public_names_only():
    bad = [(f, m) for f, m in _imports("api")
           if m.startswith("llamaserve.chat") or m.startswith("llamaserve.engine.") or m.startswith("llama_cpp")]
    assert bad == []


@pytest.mark.parametrize("package", ["api", "protocol", "chat", "grammar", "router", "cli"])
def test_only_the_engine_imports_llama_cpp(package):
    assert [(f, m) for f, m in _imports(package) if m.split(".")[0] == "llama_cpp"] == []


@pytest.mark.parametrize("package, forbidden", [("protocol", "llamaserve.api"), ("chat", "llamaserve.protocol"),
                                                ("chat", "llamaserve.engine"), ("grammar", "llamaserve.chat")])
def test_lower_layers_do_not_import_upper_ones(package, forbidden):
    assert [(f, m) for f, m in _imports(package) if m.startswith(forbidden)] == []


def test_nothing_outside_the_engine_reads_slots():
    bad = []
    for path in ROOT.rglob("*.py"):
        if "engine" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "slots" and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("config", "self")):
                bad.append(path.name)
    assert bad == []
