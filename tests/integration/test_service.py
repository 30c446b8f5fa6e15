"""FaceSearchService in-process, with the real model and gallery: what any transport gets, with no gRPC."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from facesearch.gallery import Gallery, GalleryConfig
from facesearch.service import (
    EmbeddingInput,
    FaceSearchService,
    FailedPrecondition,
    InvalidArgument,
    Limits,
    NotFound,
    ResourceExhausted,
    Runtime,
)


def _photos(samples: Path, split: str, person: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((samples / split / person).glob("*.jpg"))]


def _run(embedder, data_dir, scenario):
    """Run scenario(service) inside one event loop with a started runtime, then shut it all down."""
    async def main():
        gallery = Gallery.open(GalleryConfig(data_dir=data_dir), model_id=embedder.model_id,
                               dimension=embedder.dimension)
        runtime = Runtime(embedder, gallery, detect_workers=1, max_wait_s=0.002)
        runtime.start()
        try:
            return await scenario(FaceSearchService(embedder, gallery, runtime, Limits(max_enroll_images=8)))
        finally:
            await runtime.stop()
            gallery.close()

    return asyncio.run(main())


def test_enrol_identify_verify_and_delete_through_the_service(embedder, samples, tmp_path):
    ben, madonna = _photos(samples, "train", "ben_afflek")[:3], _photos(samples, "train", "madonna")[:3]

    async def scenario_ok(svc: FaceSearchService):
        first = await svc.enroll("ben", images=ben, display_name="Ben Affleck", metadata={"team": "a"})
        again = await svc.enroll("ben", images=ben[:2] + [b"not an image"])
        await svc.enroll("madonna", images=madonna)
        query = _photos(samples, "val", "madonna")[0]
        found = await svc.identify(query, top_k=2)
        embedded = await svc.embed(query)
        by_vector = await svc.identify(EmbeddingInput(embedded.faces[0].vector.tolist(), "facenet-128"))
        same, other = await svc.verify(query, "madonna"), await svc.verify(query, "ben")
        with pytest.raises(InvalidArgument):
            await svc.identify(b"not an image at all")
        deleted = await svc.delete_identity("madonna")
        info = await svc.info()
        page, token = await svc.list_identities(1)
        return first, again, found, embedded, by_vector, same, other, deleted, info, page, token

    first, again, found, embedded, by_vector, same, other, deleted, info, page, token = \
        _run(embedder, tmp_path / "b", scenario_ok)
    assert first.created and len(first.face_ids) == 3 and not first.rejected
    assert again.duplicates == [0, 1] and not again.face_ids and [r.index for r in again.rejected] == [2]
    top = found.faces[0]
    assert top.known and top.matches[0].identity_id == "madonna" and top.box is not None
    assert by_vector.faces[0].matches[0].identity_id == "madonna" and by_vector.faces[0].box is None
    assert abs(by_vector.faces[0].matches[0].distance - top.matches[0].distance) < 1e-3
    np.testing.assert_allclose(np.linalg.norm(embedded.faces[0].vector), 1.0, rtol=1e-5)
    assert same.match and not other.match and same.distance < other.distance
    assert deleted == 3 and info.identity_count == 1 and info.face_count == 3
    assert [i.identity_id for i in page] == ["ben"] and token == ""


def test_the_service_raises_its_own_error_kinds(embedder, tmp_path):
    async def scenario(svc: FaceSearchService):
        errors = {}
        for name, call in {
            "unknown identity": svc.get_identity("nobody"),
            "other model": svc.identify(EmbeddingInput([0.1] * 128, "another-model")),
            "too many faces": svc.enroll("x", embeddings=[EmbeddingInput([0.1] * 128)] * 9),
            "bad face id": svc.delete_face("12abc"),
            "bad mode": svc.identify(b"\x89PNG", face_mode=7),
        }.items():
            try:
                await call
            except Exception as exc:
                errors[name] = exc
        return errors

    errors = _run(embedder, tmp_path, scenario)
    assert isinstance(errors["unknown identity"], NotFound)
    assert isinstance(errors["other model"], FailedPrecondition)
    assert isinstance(errors["too many faces"], ResourceExhausted) and "the limit is 8" in str(errors["too many faces"])
    assert isinstance(errors["bad face id"], InvalidArgument)
    assert isinstance(errors["bad mode"], InvalidArgument) and "face_mode 7" in str(errors["bad mode"])


def test_admin_use_cases_fix_a_wrong_enrolment(embedder, samples, tmp_path):
    """A madonna photo enrolled under ben: listed with its crop, moved to a new identity, then found there;
    rename with an update mask, merge, and the admin errors."""
    ben, madonna = _photos(samples, "train", "ben_afflek")[:2], _photos(samples, "train", "madonna")[:2]
    query = _photos(samples, "val", "madonna")[0]

    async def scenario(svc: FaceSearchService):
        out: dict = {}
        await svc.enroll("ben", images=ben + madonna[:1], display_name="Ben", metadata={"team": "a"})
        await svc.enroll("vec", embeddings=[EmbeddingInput(np.eye(128)[0].tolist())])
        faces, token = await svc.list_faces("ben", page_size=2)
        rest, end = await svc.list_faces("ben", page_size=2, page_token=token)
        out["faces"], out["end"] = faces + rest, end
        out["before"] = (await svc.identify(query)).faces[0].matches[0].identity_id
        wrong = out["faces"][2].face_id
        out["image"] = await svc.face_image(wrong)
        out["moved"] = await svc.move_faces([wrong], "madonna", create_if_missing=True)
        out["after"] = (await svc.identify(query)).faces[0].matches[0].identity_id
        out["face"] = await svc.get_face(wrong)
        out["renamed"] = await svc.update_identity("madonna", display_name="Madonna", metadata={"x": "1"})
        out["cleared"] = await svc.update_identity("madonna", update_mask=["metadata"])
        out["prefix"] = [i.identity_id for i in (await svc.list_identities(prefix="Mad"))[0]]
        out["merged"] = await svc.merge_identities(["madonna"], "ben")
        out["merged_into"] = (await svc.identify(query)).faces[0].matches[0].identity_id
        errors = {}
        vec_face = (await svc.list_faces("vec"))[0][0].face_id
        for name, call in {
            "no crop": svc.face_image(vec_face),
            "unknown face": svc.get_face("999999"),
            "bad mask": svc.update_identity("ben", update_mask=["face_ids"]),
            "bad face id": svc.move_faces(["x1"], "ben"),
            "no target": svc.move_faces([vec_face], "nobody"),
            "target is a source": svc.merge_identities(["ben", "vec"], "ben"),
            "unknown source": svc.merge_identities(["nobody"], "ben"),
        }.items():
            try:
                await call
            except Exception as exc:
                errors[name] = exc
        out["errors"] = errors
        return out

    out = _run(embedder, tmp_path, scenario)
    faces = out["faces"]
    assert len(faces) == 3 and out["end"] == "" and [f.identity_id for f in faces] == ["ben"] * 3
    assert all(f.has_image and f.box is not None and f.box.width > 0 and len(f.source_sha256) == 64
               and f.detection_score > 0.5 and f.created_at.tzinfo is not None for f in faces)
    assert out["image"][:2] == b"\xff\xd8"
    assert (out["before"], out["moved"], out["after"]) == ("ben", 1, "madonna")
    assert out["face"].identity_id == "madonna" and out["face"].face_id == faces[2].face_id
    assert (out["renamed"].display_name, out["renamed"].metadata) == ("Madonna", {"x": "1"})
    assert (out["cleared"].display_name, out["cleared"].metadata) == ("Madonna", {})
    assert out["prefix"] == ["madonna"]
    assert (out["merged"], out["merged_into"]) == (1, "ben")
    errors = out["errors"]
    assert set(errors) == {"no crop", "unknown face", "bad mask", "bad face id", "no target", "target is a source",
                           "unknown source"}, errors
    for name in ("no crop", "unknown face", "no target", "unknown source"):
        assert isinstance(errors[name], NotFound), (name, errors[name])
    for name in ("bad mask", "bad face id", "target is a source"):
        assert isinstance(errors[name], InvalidArgument), (name, errors[name])
    assert "has no stored image" in str(errors["no crop"])
