"""The import graph runs one way: transports -> service -> gallery / embedder (docs/architecture.md)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
COMPONENTS = {name.split(".", 1)[1]: REPO / folder for name, folder in PACKAGE_DIRS.items() if "." in name}

# What each component may import of facesearch (besides itself and the shared core modules).
CORE = {"v1", "settings", "files", "sources"}
ALLOWED = {
    "embedder": set(),
    "gallery": {"embedder"},
    "service": {"embedder", "gallery"},
    "server": {"service", "embedder", "gallery"},
    "indexer": {"service", "embedder", "gallery", "client"},
    "trainer": {"embedder", "gallery"},
    "client": set(),
}


def facesearch_imports(folder: Path) -> dict[str, set[str]]:
    """{component imported: files importing it} for every .py file under folder."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "facesearch" and len(parts) > 1:
                    found.setdefault(parts[1], set()).add(str(path.relative_to(REPO)))
    return found


def test_every_component_is_known():
    assert set(COMPONENTS) >= set(ALLOWED), "a component of ALLOWED is not a package in pyproject.toml"


@pytest.mark.parametrize("component", sorted(ALLOWED))
def test_imports_point_down(component):
    imported = facesearch_imports(COMPONENTS[component])
    wrong = {name: sorted(files) for name, files in imported.items()
             if name != component and name not in CORE and name not in ALLOWED[component]
             and name not in ("__version__", "__init__")}
    assert not wrong, f"{component} imports {wrong}; allowed: {sorted(ALLOWED[component] | CORE)}"


def test_client_uses_only_the_generated_api_and_settings():
    imported = facesearch_imports(COMPONENTS["client"])
    assert set(imported) <= {"v1", "settings", "client"}, imported
