"""A fresh `pip install .` (no extras) must bring every package that llamaserve imports at run time."""

import ast
import pathlib
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normal(re.match(r"[A-Za-z0-9._-]+", dep).group(0)) for dep in project["dependencies"]}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports() -> dict[str, set[str]]:
    """Top-level module -> the files importing it, lazy imports inside functions included."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "llamaserve").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_a_declared_dependency():
    declared = _declared()
    providers = packages_distributions()
    missing = []
    for module, files in sorted(_imports().items()):
        if module in sys.stdlib_module_names or module == "llamaserve":
            continue
        dists = {_normal(d) for d in providers.get(module, [])}
        if not dists & declared:
            missing.append(f"{module} (from {', '.join(sorted(dists)) or 'no installed distribution'}; imported by {', '.join(sorted(files))})")
    assert not missing, "imported at run time but not in [project.dependencies]:\n" + "\n".join(missing)


def test_the_check_sees_lazy_imports():
    # the router imports httpx inside functions too; the walk must find those imports
    assert "httpx" in _imports() and "llama_cpp" in _imports()
