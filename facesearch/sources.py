"""What to index: a folder laid out as <identity_id>/<images>, or a CSV/JSONL manifest
with the columns path, identity_id and display_name (paths relative to the manifest)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


class SourceError(ValueError):
    """The gallery path or manifest cannot be read (a fatal error)."""


@dataclass(frozen=True)
class Item:
    path: Path
    identity_id: str
    display_name: str = ""
    box: tuple[int, int, int, int] | None = None   # the face wanted (x, y, w, h); None: the primary face


def scan(gallery: Path) -> list[Item]:
    gallery = Path(gallery)
    if gallery.is_dir():
        items = [Item(p, d.name) for d in sorted(gallery.iterdir()) if d.is_dir() and not d.name.startswith(".")
                 for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")]
        if not items:
            raise SourceError(f"{gallery} holds no <identity_id>/<image> files")
        return items
    if not gallery.is_file():
        raise SourceError(f"{gallery} does not exist")
    suffix = gallery.suffix.lower()
    try:
        if suffix == ".csv":
            with open(gallery, newline="") as f:
                rows = list(csv.DictReader(f))
        elif suffix in (".jsonl", ".ndjson"):
            rows = [json.loads(line) for line in gallery.read_text().splitlines() if line.strip()]
        else:
            raise SourceError(f"{gallery}: a gallery is a folder, a .csv or a .jsonl manifest")
    except (OSError, ValueError, csv.Error) as exc:
        raise SourceError(f"{gallery} cannot be read: {exc}") from None
    items = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("path") or not row.get("identity_id"):
            raise SourceError(f"{gallery} row {n}: needs path and identity_id")
        path = Path(row["path"])
        items.append(Item(path if path.is_absolute() else gallery.parent / path, str(row["identity_id"]),
                          str(row.get("display_name") or "")))
    return items
