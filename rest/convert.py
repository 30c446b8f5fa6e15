"""The service's typed results as JSON objects (the shapes of schemas.py, the proto's field names)."""

from __future__ import annotations

from datetime import timezone

from facesearch.embedder import FaceMode
from facesearch.service import (
    UnknownPage,
    CalibrateResult,
    EmbeddingInput,
    EmbedResult,
    EnrollResult,
    FaceMatches,
    FaceRecord,
    IdentifyResult,
    Identity,
    Match,
    ServiceInfo,
    VerifyResult,
)

from . import schemas

SOURCES = {"configured": "CUTOFF_SOURCE_CONFIGURED", "calibrated": "CUTOFF_SOURCE_CALIBRATED",
           "default": "CUTOFF_SOURCE_DEFAULT"}


def face_mode(name: str) -> FaceMode:
    return FaceMode[name.removeprefix("FACE_MODE_")]


def embedding(e: schemas.Embedding) -> EmbeddingInput:
    return EmbeddingInput(e.values, e.model_id or None)


def box(b) -> dict | None:
    return None if b is None else {"x": int(b.x), "y": int(b.y), "width": int(b.width), "height": int(b.height)}


def match(m: Match) -> dict:
    return {"identity_id": m.identity_id, "display_name": m.display_name or "", "distance": float(m.distance),
            "face_id": str(m.face_id)}


def face_result(f: FaceMatches) -> dict:
    return {"box": box(f.box), "detection_score": float(f.detection_score), "known": f.known,
            "matches": [match(m) for m in f.matches]}


def identify(r: IdentifyResult) -> dict:
    return {"faces": [face_result(f) for f in r.faces], "model_id": r.model_id}


def enroll(r: EnrollResult) -> dict:
    return {"identity_id": r.identity_id, "created": r.created, "face_ids": [str(i) for i in r.face_ids],
            "rejected": [{"index": x.index, "reason": x.reason} for x in r.rejected],
            "warnings": [{"index": x.index, "message": x.reason} for x in r.warnings],
            "duplicates": list(r.duplicates)}


def verify(r: VerifyResult) -> dict:
    return {"match": r.match, "distance": float(r.distance), "face_id": "" if r.face_id is None else str(r.face_id),
            "face_found": r.face_found}


def embed(r: EmbedResult) -> dict:
    return {"faces": [{"box": box(f.box), "detection_score": float(f.detection_score),
                       "embedding": {"values": f.vector.tolist(), "model_id": r.model_id}} for f in r.faces]}


def identity(i: Identity) -> dict:
    return {"identity_id": i.identity_id, "display_name": i.display_name or "",
            "metadata": {str(k): str(v) for k, v in (i.metadata or {}).items()},
            "face_count": i.face_count, "face_ids": [str(f) for f in i.face_ids]}


def rfc3339(when) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def unknown_page(p: UnknownPage) -> dict:
    return {"clusters": [{"cluster_id": str(c.cluster_id), "size": c.size, "first_seen": rfc3339(c.first_seen),
                          "last_seen": rfc3339(c.last_seen), "sample_face_ids": [str(i) for i in c.sample_face_ids],
                          "sources": list(c.sources)} for c in p.clusters],
            "next_page_token": p.next_page_token, "waiting_faces": p.waiting, "total_faces": p.total}


def face(f: FaceRecord) -> dict:
    created = rfc3339(f.created_at)
    return {"face_id": str(f.face_id), "identity_id": f.identity_id, "model_id": f.model_id, "box": box(f.box),
            "detection_score": float(f.detection_score), "source_sha256": f.source_sha256,
            "source_path": f.source_path, "created_at": created, "has_image": f.has_image}


def info(i: ServiceInfo) -> dict:
    return {"model_id": i.model_id, "dimension": i.dimension, "default_max_distance": float(i.default_max_distance),
            "identity_count": i.identity_count, "face_count": i.face_count, "index_type": i.index_type,
            "version": i.version, "default_max_distance_source": SOURCES.get(i.default_max_distance_source,
                                                                             "CUTOFF_SOURCE_UNSPECIFIED"),
            "calibration_stale": i.calibration_stale, "changes_since_calibration": i.changes_since_calibration,
            "calibrated_at": float(i.calibrated_at), "keep_unknown_days": float(i.keep_unknown_days)}


def calibration(r: CalibrateResult) -> dict:
    c = r.calibration
    return {"max_distance": float(c.max_distance), "expected_fpir": float(c.expected_fpir),
            "expected_fnir": float(c.expected_fnir), "identities": c.identities,
            "genuine_comparisons": c.genuine_comparisons, "impostor_comparisons": c.impostor_comparisons,
            "applied": r.applied, "faces": c.faces, "sampled": c.sampled}
