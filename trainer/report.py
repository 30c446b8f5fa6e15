"""report.json and its plots, for train (before/after) and evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path

from . import plots


def clean(value):
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write(out: Path, report: dict, evaluations: dict[str, dict], cutoff: float,
          history: list[dict] | None = None) -> Path:
    """Writes out/report.json (curves left out) and PNGs: histograms, ROC, loss curve."""
    out.mkdir(parents=True, exist_ok=True)
    curves = {label: ev["_curves"] for label, ev in evaluations.items() if ev and "_curves" in ev}
    written = []
    if curves:
        written.append(plots.histograms(curves, cutoff, out / "distances.png").name)
        written.append(plots.roc(curves, out / "roc.png").name)
    if history:
        written.append(plots.loss_curve(history, out / "loss.png").name)
    path = out / "report.json"
    path.write_text(json.dumps(clean({**report, "plots": written}), indent=2) + "\n")
    return path


def summary_lines(evaluations: dict[str, dict]) -> list[str]:
    """A small before/after table for the terminal."""
    rows = [
        ("top-1, one anchor per person", lambda e: e["identification"]["top1_one_anchor_per_person"], "{:.1%}"),
        ("top-1, whole gallery", lambda e: e["identification"]["top1_whole_gallery"], "{:.1%}"),
        ("genuine distance, median", lambda e: e["distances"]["genuine"].get("median"), "{:.2f}"),
        ("impostor distance, median", lambda e: e["distances"]["impostor"].get("median"), "{:.2f}"),
        ("verification accuracy (10-fold)", lambda e: e["verification"]["accuracy"], "{:.1%}"),
        ("TAR at FAR 1e-2", lambda e: e["tar_at_far"]["0.01"]["tar"], "{:.1%}"),
        ("open-set FNIR at FPIR 1e-2", lambda e: e["open_set"]["fnir_at_fpir"]["0.01"]["fnir"], "{:.1%}"),
        ("open-set FPIR at the cutoff", lambda e: e["open_set"]["at_cutoff"]["fpir"], "{:.1%}"),
        ("best cutoff (service scale)", lambda e: e["best_cutoff"], "{:.2f}"),
        ("recommended max_distance", lambda e: e["recommended_max_distance"]["max_distance"], "{:.2f}"),
    ]
    labels = list(evaluations)
    lines = [f"{'':34}" + "".join(f"{label:>12}" for label in labels)]
    for name, get, fmt in rows:
        cells = []
        for label in labels:
            try:
                value = get(evaluations[label])
                cells.append(fmt.format(value) if value is not None and math.isfinite(value) else "n/a")
            except (KeyError, TypeError):
                cells.append("n/a")
        lines.append(f"{name:34}" + "".join(f"{c:>12}" for c in cells))
    return lines
