"""The project's own docs: every `docs/*.md#anchor` pointer in the tree resolves, and nothing
points to design notes that are not in the repository. Pure text checks, no model."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "build", "dist", "results", ".pytest_cache"}
LOCAL_DIRS = {"var", "photos", "models", ".whl", ".gl"}   # data written by local runs, at the top level
# "" covers Makefile, Dockerfile and dotfiles; ".gpu" is Dockerfile.gpu.
TEXT_SUFFIXES = {".py", ".md", ".toml", ".proto", ".yml", ".yaml", ".cfg", ".txt", ".json", ".gpu", ""}
# Written in two parts so that this file does not match itself.
OUTSIDE = re.compile(r"\b(?:DESIGN|PERF)" + r"\.md\b")
POINTER = re.compile(r"docs/([a-z_-]+\.md)(?:#([a-z0-9_-]+))?")
RELATIVE = re.compile(r"\]\(([a-z_-]+\.md)(?:#([a-z0-9_-]+))?\)")


def tree_files():
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                   and not (Path(folder) == REPO and d in LOCAL_DIRS)]
        for name in files:
            path = Path(folder) / name
            if path.suffix in TEXT_SUFFIXES:
                yield path


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_slug_matches_github():
    assert slug("Identify, from bytes to answer") == "identify-from-bytes-to-answer"
    assert slug("IndexIDMap2 costs (1M flat)") == "indexidmap2-costs-1m-flat"
    assert slug("The `VectorIndex` Protocol") == "the-vectorindex-protocol"


def test_docs_exist():
    assert (DOCS / "architecture.md").is_file() and (DOCS / "performance.md").is_file()


def test_nothing_points_outside_the_repository():
    found = [f"{p.relative_to(REPO)}:{i}" for p in tree_files()
             for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, f"pointers to documents that are not in the repository: {found}"


def pointers():
    for path in tree_files():
        text = path.read_text(errors="replace")
        for m in POINTER.finditer(text):
            yield path, m.group(1), m.group(2)
        if path.parent == DOCS:
            for m in RELATIVE.finditer(text):
                yield path, m.group(1), m.group(2)


@pytest.mark.parametrize("source,doc,anchor", sorted({(str(p.relative_to(REPO)), d, a or "") for p, d, a in pointers()}))
def test_pointer_resolves(source, doc, anchor):
    target = DOCS / doc
    assert target.is_file(), f"{source} points to docs/{doc}, which does not exist"
    if anchor:
        assert anchor in anchors(target), f"{source} points to docs/{doc}#{anchor}, which has no such heading"


def test_the_readme_layout_table_names_every_folder():
    """README's Layout table and the repository's top-level folders (those git tracks) are the same."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    folders = {path.split("/")[0] for path in tracked if "/" in path and not path.startswith(".")}
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("\n## ", readme.index("## Layout") + 1)]
    listed = {cell.strip("`/") for row in layout.splitlines() if row.startswith("| `")
              for cell in row.split("|")[1].replace(",", " ").split() if cell.endswith("/`")}
    assert listed == folders, f"only in the README: {sorted(listed - folders)}; only in git: {sorted(folders - listed)}"
