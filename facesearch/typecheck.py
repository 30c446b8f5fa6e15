"""Run mypy --strict on the typed seams (`make typecheck`, and a step of `make test`).

    python -m facesearch.typecheck [PACKAGE ...]   # default: the packages in pyproject's [tool.facesearch] typed

The components live in top-level folders that install as facesearch.<name> (pyproject's
package-dir), which mypy cannot map. So mypy runs on a throwaway tree of symlinks laid out as the
installed package: facesearch/ with each component folder linked in under its package name.
Messages name the real files (the link tree's prefix is cut).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def link_tree(root: Path) -> Path:
    """root/facesearch, laid out as installed: the core modules and each component as a subpackage."""
    package = root / "facesearch"
    package.mkdir()
    dirs = _pyproject()["tool"]["setuptools"]["package-dir"]
    components = {name.split(".", 1)[1]: REPO / folder for name, folder in dirs.items() if "." in name}
    for entry in (REPO / dirs["facesearch"]).iterdir():
        if entry.name != "__pycache__" and entry.name not in components:
            (package / entry.name).symlink_to(entry)
    for name, folder in components.items():
        (package / name).symlink_to(folder)
    return package


def run(packages: list[str]) -> int:
    """mypy on facesearch.<package> for each package, with pyproject's [tool.mypy]; its exit status."""
    from mypy import api

    with tempfile.TemporaryDirectory(prefix="facesearch-typecheck-") as tmp:
        link_tree(Path(tmp))
        args = ["--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(REPO / ".mypy_cache")]
        for package in packages:
            args += ["-p", f"facesearch.{package}"]
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            out, err, status = api.run(args)
        finally:
            os.chdir(cwd)
    prefix = "facesearch/"
    dirs = _pyproject()["tool"]["setuptools"]["package-dir"]
    for line in out.splitlines():
        if line.startswith(prefix):   # facesearch/gallery/x.py -> gallery/x.py, the file in this repo
            head, _, rest = line[len(prefix):].partition("/")
            folder = dirs.get(f"facesearch.{head}")
            line = f"{folder}/{rest}" if folder and rest else line
        print(line)
    if err:
        print(err, file=sys.stderr, end="")
    return status


def main(argv: list[str] | None = None) -> int:
    typed = _pyproject()["tool"]["facesearch"]["typed"]
    parser = argparse.ArgumentParser(prog="python -m facesearch.typecheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", default=typed,
                        help=f"components to check (default: {' '.join(typed)})")
    return run(parser.parse_args(argv).packages)


if __name__ == "__main__":
    sys.exit(main())
