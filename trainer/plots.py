"""PNG plots of a report: distance histograms, ROC, loss curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def histograms(curves: dict[str, dict], cutoff: float, path: Path) -> Path:
    """curves: label -> report["_curves"]; one panel per label."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False, sharey=True)
    for ax, (label, c) in zip(axes[0], curves.items()):
        bins = [i * 0.25 for i in range(49)]
        ax.hist(c["genuine"], bins=bins, alpha=0.6, density=True, label="same person")
        ax.hist(c["impostor"], bins=bins, alpha=0.6, density=True, label="different people")
        ax.axvline(cutoff, color="k", linestyle="--", linewidth=1, label=f"cutoff {cutoff:g}")
        ax.set_title(label)
        ax.set_xlabel("distance (service scale)")
    axes[0][0].legend()
    return _save(fig, path)


def roc(curves: dict[str, dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, c in curves.items():
        far = [max(f, 1e-4) for f in c["roc"]["far"]]
        ax.step(far, c["roc"]["tar"], where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("ROC, held-out pairs")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def loss_curve(history: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("triplet loss")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
