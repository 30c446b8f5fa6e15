"""Evaluation on the service's distance scale (numpy only).

Protocols, on a train/test split of labelled embeddings:
- identification: top-1 against one anchor per person (the seed's: each person's
  first train image) and against the whole train gallery;
- verification: pairs test-test and test-train; accuracy with the threshold
  chosen by 10-fold cross-validation; TAR at fixed FAR;
- open set: each person in turn left out of the gallery (train images of the
  others); the left-out person's test images are the non-mated probes, the
  others' test images the mated ones. FNIR at fixed FPIR, and the cutoff
  that reaches a target FPIR (calibration);
- gallery calibration: what the service's Calibrate would answer with the
  train images enrolled (facesearch.gallery.calibration, the same code).
"""

from __future__ import annotations

import numpy as np

from facesearch.embedder.distances import DEFAULT_CUTOFF, pairwise
from facesearch.gallery import calibration
from facesearch.gallery.calibration import threshold_at
from facesearch.gallery.errors import CalibrationError


def _stats(d: np.ndarray) -> dict:
    if len(d) == 0:
        return {"count": 0}
    p = np.percentile(d, [5, 50, 95])
    return {"count": int(len(d)), "min": float(d.min()), "p5": float(p[0]), "median": float(p[1]),
            "mean": float(d.mean()), "p95": float(p[2]), "max": float(d.max())}


def pair_distances(train_e, train_y, test_e, test_y) -> tuple[np.ndarray, np.ndarray]:
    """(distances, same-person) of the held-out pairs: test-test (i < j) and test-train."""
    tt = pairwise(test_e, test_e)
    iu = np.triu_indices(len(test_e), 1)
    tr = pairwise(test_e, train_e)
    d = np.concatenate([tt[iu], tr.ravel()])
    same = np.concatenate([(test_y[:, None] == test_y[None, :])[iu], (test_y[:, None] == train_y[None, :]).ravel()])
    return d, same


def _best_threshold(d: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of `d <= t` on these pairs."""
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], same[order]
    # accepting the first i pairs: correct = genuine among them + impostors after them
    correct = np.concatenate([[0], np.cumsum(ss)]) + (len(ss) - ss.sum()) - np.concatenate([[0], np.cumsum(~ss)])
    distinct = np.concatenate([ds[1:] != ds[:-1], [True]])     # cut only between different distances
    candidates = np.concatenate([[0], np.flatnonzero(distinct) + 1])
    best = candidates[np.argmax(correct[candidates])]
    if best == 0:
        t = float(ds[0]) - 1e-6
    elif best == len(ds):
        t = float(ds[-1])
    else:
        t = float((ds[best - 1] + ds[best]) / 2)
    return t, float(correct[best] / len(ss))


def cross_validated_accuracy(d: np.ndarray, same: np.ndarray, folds: int = 10, seed: int = 0) -> dict:
    if len(d) < folds or same.all() or not same.any():
        return {"folds": folds, "accuracy": float("nan"), "threshold": float("nan")}
    parts = np.array_split(np.random.default_rng(seed).permutation(len(d)), folds)
    accs, ts = [], []
    for k in range(folds):
        fit = np.concatenate([p for j, p in enumerate(parts) if j != k])
        t, _ = _best_threshold(d[fit], same[fit])
        held = parts[k]
        accs.append(float(np.mean((d[held] <= t) == same[held])))
        ts.append(t)
    return {"folds": folds, "accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "threshold": float(np.mean(ts)), "threshold_std": float(np.std(ts))}


def roc(d: np.ndarray, same: np.ndarray) -> dict:
    """TAR and FAR at every distinct threshold (for plots)."""
    ts = np.unique(d)
    gen, imp = np.sort(d[same]), np.sort(d[~same])
    tar = np.searchsorted(gen, ts, side="right") / max(len(gen), 1)
    far = np.searchsorted(imp, ts, side="right") / max(len(imp), 1)
    return {"threshold": ts.tolist(), "tar": tar.tolist(), "far": far.tolist()}


def open_set(train_e, train_y, test_e, test_y, people: list[str]) -> dict:
    """Leave-one-person-out probes: (mated best distance, mated correct, non-mated best distance, owner)."""
    d = pairwise(test_e, train_e)
    mated_d, mated_ok, non_d, non_owner = [], [], [], []
    for left_out in np.unique(test_y):
        keep = train_y != left_out
        if not keep.any():
            continue
        sub, ids = d[:, keep], train_y[keep]
        best = sub.argmin(1)
        best_d, best_id = sub[np.arange(len(sub)), best], ids[best]
        probe = test_y == left_out
        non_d += best_d[probe].tolist()
        non_owner += [people[int(left_out)]] * int(probe.sum())
        mated = ~probe & np.isin(test_y, ids)
        mated_d += best_d[mated].tolist()
        mated_ok += (best_id[mated] == test_y[mated]).tolist()
    return {"mated_distance": np.array(mated_d), "mated_correct": np.array(mated_ok, dtype=bool),
            "nonmated_distance": np.array(non_d), "nonmated_owner": non_owner}


def fnir_at(probes: dict, cutoff: float) -> float:
    ok = probes["mated_correct"] & (probes["mated_distance"] <= cutoff)
    return float(1.0 - ok.mean()) if len(ok) else float("nan")


def calibrate(probes: dict, target_fpir: float) -> float:
    """The service cutoff (max_distance) at which at most target_fpir of non-mated probes are accepted."""
    return threshold_at(probes["nonmated_distance"], target_fpir)


def gallery_calibration(train_e, train_y, target_fnir: float) -> dict:
    """The service's Calibrate(target_fnir) on a gallery of the train images, or why it cannot."""
    try:
        return calibration.calibrate(train_e, train_y, target_fnir=target_fnir).to_dict()
    except CalibrationError as exc:
        return {"error": str(exc)}


def evaluate(train_e, train_y, test_e, test_y, people: list[str], *, cutoff: float = DEFAULT_CUTOFF,
             target_fpir: float = 0.01, target_fnir: float = calibration.DEFAULT_TARGET_FNIR, seed: int = 0) -> dict:
    """Every figure of the report (see the module docstring); JSON-ready."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    anchors = [int(np.flatnonzero(train_y == c)[0]) for c in range(len(people)) if (train_y == c).any()]
    to_anchor = pairwise(test_e, train_e[anchors]).argmin(1)
    top1_anchor = float(np.mean(train_y[anchors][to_anchor] == test_y))
    top1_gallery = float(np.mean(train_y[pairwise(test_e, train_e).argmin(1)] == test_y))
    d, same = pair_distances(train_e, train_y, test_e, test_y)
    gen, imp = d[same], d[~same]
    probes = open_set(train_e, train_y, test_e, test_y, people)
    non = probes["nonmated_distance"]
    rejected = {}
    for owner, dist in zip(probes["nonmated_owner"], non):
        r = rejected.setdefault(owner, [0, 0])
        r[0] += int(dist > cutoff)
        r[1] += 1
    recommended = calibrate(probes, target_fpir)
    verification = cross_validated_accuracy(d, same, 10, seed)
    far_cuts = {far: threshold_at(imp, far) for far in (1e-2, 1e-3)}
    fpir_cuts = {f: threshold_at(non, f) for f in sorted({1e-2, target_fpir})}
    all_e, all_y = np.concatenate([train_e, test_e]), np.concatenate([train_y, test_y])
    iu = np.triu_indices(len(all_y), 1)
    all_d, all_same = pairwise(all_e, all_e)[iu], (all_y[:, None] == all_y[None, :])[iu]
    return {
        "counts": {"people": len(people), "train": int(len(train_y)), "test": int(len(test_y)),
                   "genuine_pairs": int(same.sum()), "impostor_pairs": int((~same).sum())},
        "identification": {"top1_one_anchor_per_person": top1_anchor, "top1_whole_gallery": top1_gallery},
        "distances": {"genuine": _stats(gen), "impostor": _stats(imp)},
        "at_cutoff": {"cutoff": cutoff, "genuine_accepted": float(np.mean(gen <= cutoff)) if len(gen) else None,
                      "impostor_accepted": float(np.mean(imp <= cutoff)) if len(imp) else None},
        "verification": verification,
        "tar_at_far": {str(far): {"threshold": t, "tar": float(np.mean(gen <= t)) if len(gen) else None,
                                  "resolution": 1.0 / max(len(imp), 1)} for far, t in far_cuts.items()},
        "open_set": {
            "mated_probes": int(len(probes["mated_distance"])), "nonmated_probes": int(len(non)),
            "fnir_at_fpir": {str(f): {"cutoff": t, "fnir": fnir_at(probes, t)} for f, t in fpir_cuts.items()},
            "at_cutoff": {"cutoff": cutoff, "fpir": float(np.mean(non <= cutoff)) if len(non) else None,
                          "fnir": fnir_at(probes, cutoff), "nonmated_rejected": rejected},
        },
        "all_images": {"genuine": _stats(all_d[all_same]), "impostor": _stats(all_d[~all_same]),
                       "genuine_accepted": float(np.mean(all_d[all_same] <= cutoff)),
                       "impostor_accepted": float(np.mean(all_d[~all_same] <= cutoff))},
        "best_cutoff": verification["threshold"],
        "recommended_max_distance": {"target_fpir": target_fpir, "max_distance": recommended},
        "gallery_calibration": gallery_calibration(train_e, train_y, target_fnir),
        "_curves": {"roc": roc(d, same), "genuine": gen.tolist(), "impostor": imp.tolist()},
    }
