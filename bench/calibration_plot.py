"""The figures of docs/calibration.md and the README's Calibration section (needs the model).

- docs/calibration.png: estimated FPIR and FNIR against the cutoff for the sample gallery
  (the 5-celebrity train photos enrolled, as `make serve` does), with 3.5 and the
  Calibrate(target_fnir=0.01) cutoff marked.
- the Avengers split, leave-one-out: each person in turn left out, the other four's train
  crops enrolled; their test crops probed at 3.5 and at the cutoff of
  Calibrate(target_fnir=0.01) (the same gallery.calibration code the server runs).
Writes bench/results/calibration.json; skips the Avengers part without the data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bench import common

from facesearch.embedder import Embedder, EmbedderConfig, WeightsCache, decode, pairwise, primary_face
from facesearch.embedder.distances import DEFAULT_CUTOFF
from facesearch.gallery import calibration as cal

REPO = Path(__file__).resolve().parent.parent
AVENGERS = Path(os.environ.get("FACESEARCH_SHARED", REPO.parent / "shared")) / "data" / "avengers"


def sample_gallery(embedder: Embedder) -> tuple[np.ndarray, np.ndarray]:
    root = WeightsCache(embedder.config.cache_dir).sample_gallery() / "train"
    crops, labels = [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        images = [decode(p.read_bytes()) for p in photos]
        for img, found in zip(images, embedder.find_faces_many(images)):
            face = primary_face(found, img.shape)
            if face is not None:
                crops.append(face.crop)
                labels.append(person.name)
    return embedder.embed_crops(crops), np.array(labels)


def plot(nb: cal.Neighbours, chosen: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.linspace(0, 8, 801)
    fpir, fnir = cal.curves(nb, t)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(t, fpir, label="FPIR: strangers accepted (impostor side)")
    ax.plot(t, fnir, label="FNIR: enrolled faces missed (genuine side)")
    ax.axvline(DEFAULT_CUTOFF, color="grey", ls="--", lw=1, label=f"built-in {DEFAULT_CUTOFF}")
    ax.axvline(chosen, color="black", ls=":", lw=1, label=f"Calibrate(target_fnir=0.01): {chosen:.2f}")
    ax.set_xlabel("cutoff (max_distance, service scale)")
    ax.set_ylabel("estimated rate")
    ax.set_title(f"Sample gallery: {nb.faces} faces of {nb.identities} identities")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


def avengers(embedder: Embedder) -> dict | None:
    split_file = AVENGERS / "seed_split.json"
    if not split_file.is_file():
        print(f"no Avengers data at {AVENGERS}: skipped")
        return None
    split = json.loads(split_file.read_text())
    people = sorted(p.name for p in AVENGERS.iterdir() if p.is_dir())

    def load(groups):
        paths = [AVENGERS / max((p for p in people if n.startswith(p)), key=len) / n for g in groups for n in g]
        paths = [p for p in paths if p.is_file()]
        return embedder.embed_crops([decode(p.read_bytes()) for p in paths]), np.array([p.parent.name for p in paths])

    (xtr, ytr), (xte, yte) = load(split["train_name"]), load(split["test_name"])
    out = {"per_person": {}}
    totals = {k: 0 for k in ("strangers", "rejected_before", "rejected_after", "enrolled_probes",
                             "identified_before", "identified_after")}
    for left_out in people:
        keep = ytr != left_out
        c = cal.calibrate(xtr[keep], ytr[keep], target_fnir=0.01)
        d = pairwise(xte, xtr[keep])
        best, owner = d.min(1), ytr[keep][d.argmin(1)]
        stranger = yte == left_out
        row = {"cutoff": c.max_distance, "expected_fpir": c.expected_fpir, "expected_fnir": c.expected_fnir,
               "strangers": int(stranger.sum()), "enrolled_probes": int((~stranger).sum())}
        for when, t in (("before", DEFAULT_CUTOFF), ("after", c.max_distance)):
            row[f"rejected_{when}"] = int((best[stranger] > t).sum())
            row[f"identified_{when}"] = int(((best <= t) & (owner == yte))[~stranger].sum())
        out["per_person"][left_out] = row
        for k in totals:
            totals[k] += row[k]
    out["totals"] = totals
    print("Avengers leave-one-out: strangers rejected {rejected_before}/{strangers} at 3.5, {rejected_after}/"
          "{strangers} calibrated; enrolled identified {identified_before}/{enrolled_probes} at 3.5, "
          "{identified_after}/{enrolled_probes} calibrated".format(**totals))
    return out


def main() -> None:
    embedder = Embedder.load(EmbedderConfig.from_env(model="facenet-128"))
    x, y = sample_gallery(embedder)
    nb = cal.neighbours(x, y)
    chosen = cal.choose(nb, target_fnir=0.01)
    fpir = cal.choose(nb, target_fpir=0.05) if nb.impostor_comparisons >= 200 else None
    plot(nb, chosen.max_distance, REPO / "docs" / "calibration.png")
    print(f"sample gallery: Calibrate(target_fnir=0.01) -> {chosen.max_distance:.3f} (FPIR {chosen.expected_fpir:.4f}, "
          f"FNIR {chosen.expected_fnir:.4f}); at 3.5 FPIR {nb.fpir(3.5):.4f}, FNIR {nb.fnir(3.5):.4f}")
    common.write("calibration", {
        "sample_gallery": {"target_fnir_0.01": chosen.to_dict(), "target_fpir_0.05": fpir and fpir.to_dict(),
                           "at_3.5": {"fpir": nb.fpir(3.5), "fnir": nb.fnir(3.5)}},
        "avengers_leave_one_out": avengers(embedder)})


if __name__ == "__main__":
    main()
