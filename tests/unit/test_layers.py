"""The import graph runs one way: transports -> service -> gallery / embedder (docs/architecture.md).

The two transports (server: gRPC, rest: REST/JSON) both call the service and know nothing of each
other's libraries; only the server process (server/app.py) starts the REST adapter beside gRPC.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
COMPONENTS = {name.split(".", 1)[1]: REPO / folder for name, folder in PACKAGE_DIRS.items() if "." in name}
CORE_FOLDER = REPO / PACKAGE_DIRS["facesearch"]
SOURCES = [CORE_FOLDER, *COMPONENTS.values()]
GRPC = ("grpc", "grpc_health", "grpc_reflection", "facesearch.v1", "facesearch.server")
HTTP = ("fastapi", "starlette", "uvicorn", "multipart", "facesearch.rest")

# What each component may import of facesearch (besides itself and the shared core modules).
CORE = {"v1", "settings", "files", "sources"}
ALLOWED = {
    "embedder": set(),
    "gallery": {"embedder"},
    "service": {"embedder", "gallery"},
    "server": {"service", "embedder", "gallery", "rest"},   # rest: only app.py (test below)
    "rest": {"service", "embedder"},
    "indexer": {"service", "embedder", "gallery", "client"},
    "trainer": {"embedder", "gallery"},
    "client": set(),
}


def python_files(folder: Path) -> list[Path]:
    """The folder's own .py files: not a component folder nested in it, not the generated code."""
    nested = [f for f in SOURCES if f != folder and f.is_relative_to(folder)]
    return [p for p in folder.rglob("*.py")
            if not any(p.is_relative_to(n) for n in nested) and not p.is_relative_to(CORE_FOLDER / "v1")]


def imported_names(path: Path) -> list[str]:
    """Every absolute module name a file imports (for `from m import n`: m and m.n)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def facesearch_imports(folder: Path) -> dict[str, set[str]]:
    """{component imported: files importing it} for every .py file under folder."""
    found: dict[str, set[str]] = {}
    for path in python_files(folder):
        for name in imported_names(path):
            parts = name.split(".")
            if parts[0] == "facesearch" and len(parts) > 1:
                found.setdefault(parts[1], set()).add(str(path.relative_to(REPO)))
    return found


def importers(folder: Path, prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    """{file: the modules it imports that start with one of prefixes}."""
    found = {}
    for path in python_files(folder):
        hits = sorted({n for n in imported_names(path) if any(n == p or n.startswith(p + ".") for p in prefixes)})
        if hits:
            found[str(path.relative_to(REPO))] = hits
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


def test_the_shared_core_imports_no_component():
    """facesearch/ itself (settings, files, sources, testing, ...) sits under every component."""
    imported = facesearch_imports(CORE_FOLDER)
    wrong = {name: sorted(files) for name, files in imported.items() if name not in CORE and name != "__version__"}
    assert not wrong, f"facesearch/ imports components {wrong}; it may use only {sorted(CORE)}"


def test_the_rest_adapter_imports_no_grpc():
    assert not importers(COMPONENTS["rest"], GRPC)


def test_the_grpc_adapter_imports_no_http_framework():
    """Only the process that runs both (server/app.py) starts the REST adapter, through its package."""
    found = importers(COMPONENTS["server"], HTTP)
    assert found == {"server/app.py": ["facesearch.rest", "facesearch.rest.HttpOptions", "facesearch.rest.HttpServer",
                                       "facesearch.rest.create_app"]}, found


def test_no_module_imports_another_modules_private_names():
    """`from m import _name` reaches into m's insides: make the name public or keep it in m."""
    wrong = []
    for folder in SOURCES:
        for path in python_files(folder):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom):
                    wrong += [f"{path.relative_to(REPO)}: {node.module} {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not wrong, wrong


def test_the_gallery_never_probes_an_index_for_a_capability():
    """An index's lifecycle is its type (gallery/index.py: InProcessIndex or DurableIndex, told apart by
    `durable`), never found out with hasattr/getattr at run time."""
    probes = []
    for path in python_files(COMPONENTS["gallery"]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr") \
                    and node.args and any(w in ast.unparse(node.args[0]) for w in ("index", "fresh", "old")):
                probes.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not probes, probes
