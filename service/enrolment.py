"""The one enrolment pipeline, shared by Enroll, the indexer and the sample gallery:
prepared face crops (embedder.prepare) -> embeddings -> faces of identities, in one transaction.

Re-running an import is harmless: an image whose bytes an identity already has a face from
is skipped (`Dedupe`), so is the same image twice in one run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesearch.embedder.prepare import Prepared
from facesearch.gallery import Enrolment, Gallery, NewFace


@dataclass
class Candidate:
    """One image of one identity whose face was found, waiting for its embedding."""
    identity_id: str
    sha256: str
    prepared: Prepared
    source_path: str | None = None
    display_name: str | None = None


class Dedupe:
    """Which (identity, image sha256) pairs are new: not in the gallery, not seen before in this run."""

    def __init__(self, gallery: Gallery):
        self.gallery = gallery
        self.seen: set[tuple[str, str]] = set()

    def fresh(self, pairs: list[tuple[str, str]]) -> list[bool]:
        by_identity: dict[str, list[str]] = {}
        for identity_id, sha in pairs:
            by_identity.setdefault(identity_id, []).append(sha)
        known = {(iid, sha) for iid, shas in by_identity.items() for sha in self.gallery.existing_sources(iid, shas)}
        out = []
        for pair in pairs:
            new = pair not in known and pair not in self.seen
            self.seen.add(pair)
            out.append(new)
        return out


def warning(prepared: Prepared) -> str | None:
    """Said when an image held several faces and one was picked."""
    if prepared.faces <= 1 or prepared.box is None:
        return None
    x, y, w, h = prepared.box
    return f"{prepared.faces} faces found; enrolled the largest, most central one at x={x} y={y} {w}x{h}"


def new_face(candidate: Candidate, vector: np.ndarray) -> NewFace:
    p = candidate.prepared
    return NewFace(vector, source_sha256=candidate.sha256, source_path=candidate.source_path, box=p.box,
                   detection_score=p.score, crop_jpeg=p.crop_jpeg)


def enrolments(candidates: list[Candidate], vectors: np.ndarray) -> list[Enrolment]:
    """Faces grouped by identity, in the order identities first appear."""
    grouped: dict[str, Enrolment] = {}
    for c, v in zip(candidates, vectors):
        e = grouped.setdefault(c.identity_id, Enrolment(c.identity_id, [], c.display_name or None))
        e.faces.append(new_face(c, v))
    return list(grouped.values())
