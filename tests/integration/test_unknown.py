"""Unknown faces (issue #23 section 3): retention off by default; kept with their source and clustered
when on; purged after expiry and beyond the row bound; forgotten leaving nothing in SQL or the index;
a cluster enrolled becomes findable. In-process service and gallery (no server); the clock of the
purge is driven, not slept on."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from facesearch.gallery import Gallery, GalleryConfig, UnknownFace
from facesearch.gallery.schema import changes, unknown_faces
from facesearch.gallery.sql import database_now
from facesearch.rest import HttpOptions, create_app
from facesearch.server.config import ServerConfig
from facesearch.service import (
    FaceSearchService,
    InvalidArgument,
    Limits,
    NotFound,
    Retention,
    Runtime,
    UnknownKeeper,
)
from facesearch.service.unknown import keeper_for


def _photos(samples: Path, split: str, person: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((samples / split / person).glob("*.jpg"))]


def _rows(gallery: Gallery) -> int:
    with gallery.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(unknown_faces)).scalar()


def _forget_logged(gallery: Gallery) -> int:
    with gallery.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(changes).where(changes.c.op == "forget")).scalar()


def _run(embedder, data_dir, retention: Retention, scenario):
    async def main():
        gallery = Gallery.open(GalleryConfig(data_dir=data_dir), model_id=embedder.model_id,
                               dimension=embedder.dimension)
        runtime = Runtime(embedder, gallery, detect_workers=1, max_wait_s=0.002, follow_s=0)
        runtime.start()
        keeper = keeper_for(gallery, retention)   # not started: the test steps it
        try:
            return await scenario(FaceSearchService(embedder, gallery, runtime, Limits(), keeper), gallery, keeper)
        finally:
            await runtime.stop()
            gallery.close()

    return asyncio.run(main())


def test_retention_is_off_by_default(embedder, samples, tmp_path):
    assert ServerConfig().keep_unknown_days == 0 and not Retention().on

    async def scenario(svc: FaceSearchService, gallery: Gallery, keeper):
        found = await svc.identify(_photos(samples, "val", "madonna")[0], source="cam1")
        page = await svc.list_unknown_clusters()
        return keeper, found, page, _rows(gallery)

    keeper, found, page, rows = _run(embedder, tmp_path / "g", Retention(), scenario)
    assert keeper is None and found.faces and not found.faces[0].known
    assert rows == 0 and page.total == 0 and not page.clusters


def test_unknown_faces_are_kept_clustered_enrolled_purged_and_forgotten(embedder, samples, tmp_path):
    madonna, elton = _photos(samples, "train", "madonna")[:5], _photos(samples, "train", "elton_john")[:5]
    ben = _photos(samples, "train", "ben_afflek")[:3]

    async def scenario(svc: FaceSearchService, gallery: Gallery, keeper: UnknownKeeper):
        step = lambda **kw: asyncio.get_running_loop().run_in_executor(None, lambda: keeper.step(force=True, **kw))
        out = {}
        await svc.enroll("ben", images=ben)
        known = await svc.identify(_photos(samples, "val", "ben_afflek")[0], source="door")
        await step()
        out["after_known"] = _rows(gallery)   # a known face is not kept
        assert known.faces[0].known
        for photo in madonna:
            await svc.identify(photo, source="door")
        await step()
        out["page"] = page = await svc.list_unknown_clusters()
        biggest = page.clusters[0]
        out["jpeg"] = await svc.unknown_face_image(str(biggest.sample_face_ids[0]))
        out["enrolled"] = await svc.enroll_unknown_cluster(str(biggest.cluster_id), "madonna",
                                                           display_name="Madonna")
        out["found"] = await svc.identify(_photos(samples, "val", "madonna")[0])
        out["after_enrol"] = await svc.list_unknown_clusters()

        for photo in elton:
            await svc.identify(photo, source="gate")
        await step()
        out["elton"] = await svc.list_unknown_clusters()
        with gallery.engine.connect() as conn:
            now = database_now(conn)
        await step(now=now + timedelta(days=6))      # within the 7 days: kept
        out["day6"] = _rows(gallery)
        await step(now=now + timedelta(days=8))      # expired: purged, and logged
        out["day8"], out["logged"] = _rows(gallery), _forget_logged(gallery)

        for photo in elton:
            await svc.identify(photo, source="gate")
        await step()
        page = await svc.list_unknown_clusters()
        out["deleted_one"] = await svc.delete_unknown(str(page.clusters[0].cluster_id))
        with pytest.raises(NotFound):
            await svc.delete_unknown(str(page.clusters[0].cluster_id))
        with pytest.raises(InvalidArgument):
            await svc.delete_unknown()
        for photo in elton[:3]:
            await svc.identify(photo, source="gate")
        await step()
        # REST over the same service: the routes answer what the service does
        app = create_app(HttpOptions())
        app.state.service = svc
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            sent = await http.post("/v1/identify", files={"image": ("e.jpg", elton[0], "image/jpeg")},
                                   data={"source": "rest-cam"})
            assert sent.status_code == 200 and not sent.json()["faces"][0]["known"]
            await step()
            with gallery.engine.connect() as conn:
                out["sources"] = set(conn.execute(select(unknown_faces.c.source)).scalars())
            listed = (await http.get("/v1/unknown/clusters")).json()
            image = await http.get(f"/v1/unknown/faces/{listed['clusters'][0]['sample_face_ids'][0]}/image")
            out["rest"] = listed, image.status_code, image.headers["content-type"]
            out["rest_missing"] = (await http.post("/v1/unknown/clusters/999999:enroll",
                                                   json={"identity_id": "x"})).status_code
            out["deleted_all"] = (await http.delete("/v1/unknown/clusters")).json()["faces_deleted"]
        out["after_all"] = _rows(gallery), await svc.list_unknown_clusters()
        out["info"] = await svc.info()
        out["indexed"] = gallery.indexed_count()
        return out

    out = _run(embedder, tmp_path / "g", Retention(keep_days=7, max_faces=1000), scenario)
    assert out["after_known"] == 0
    page = out["page"]
    assert page.total >= 5 and page.clusters and page.clusters[0].size >= 4     # madonna's faces, one cluster
    assert page.clusters[0].sources == ["door"] and page.clusters[0].first_seen <= page.clusters[0].last_seen
    assert out["jpeg"][:2] == b"\xff\xd8"
    enrolled = out["enrolled"]
    assert enrolled.created and len(enrolled.face_ids) == page.clusters[0].size
    top = out["found"].faces[0]
    assert top.known and top.matches[0].identity_id == "madonna" and top.matches[0].display_name == "Madonna"
    assert all(c.cluster_id != page.clusters[0].cluster_id for c in out["after_enrol"].clusters)
    elton_page = out["elton"]
    assert any(c.sources == ["gate"] and c.size >= 3 for c in elton_page.clusters)
    assert out["day6"] == elton_page.total and out["day8"] == 0 and out["logged"] >= elton_page.total
    assert out["deleted_one"] >= 3
    assert out["sources"] == {"gate", "rest-cam"}
    listed, status, kind = out["rest"]
    assert listed["total_faces"] >= 3 and status == 200 and kind == "image/jpeg"
    assert out["rest_missing"] == 404 and out["deleted_all"] == listed["total_faces"]
    rows, after = out["after_all"]
    assert rows == 0 and after.total == 0 and not after.clusters
    # nothing of the unknown faces ever reached the vector index: it holds the enrolled faces only
    assert out["indexed"] == out["info"].face_count == 3 + len(enrolled.face_ids)


@pytest.fixture
def gallery(database_url, tmp_path):
    g = Gallery.open(GalleryConfig(data_dir=tmp_path / "g", database_url=database_url), model_id="m", dimension=8)
    yield g
    g.close()


def _near(rng, centre: np.ndarray, n: int) -> list[np.ndarray]:
    out = centre + rng.normal(0, 0.02, (n, len(centre)))
    return list(out / np.linalg.norm(out, axis=1, keepdims=True))


def test_the_table_on_both_databases_is_bounded_clustered_incrementally_and_purged(gallery: Gallery):
    rng = np.random.default_rng(7)
    a, b, c = np.eye(8)[:3]
    first = gallery.keep_unknown([UnknownFace(v, b"jpeg", "cam") for v in _near(rng, a, 3) + _near(rng, c, 1)])
    assert gallery.cluster_unknown(2.4, 2) == 3                   # a's three seed a cluster; c's one waits
    later = gallery.keep_unknown([UnknownFace(v, None, "cam2") for v in _near(rng, a, 1) + _near(rng, b, 2)])
    assert gallery.cluster_unknown(2.4, 2) == 3                   # joins a's cluster; b's two seed one
    page = gallery.unknown_clusters(1)
    assert [(x.cluster_id, x.size, x.sources) for x in page.clusters] == [(first[0], 4, ["cam", "cam2"])]
    assert page.waiting == 1 and page.total == 7 and page.next_page_token
    rest = gallery.unknown_clusters(1, page.next_page_token)
    assert [(x.cluster_id, x.size) for x in rest.clusters] == [(later[1], 2)] and not rest.next_page_token
    # the row bound: the newest stay
    assert gallery.purge_unknown(keep_days=7, max_faces=3) == 4
    with gallery.engine.connect() as conn:
        left = sorted(conn.execute(select(unknown_faces.c.id)).scalars())
        now = database_now(conn)
    assert left == later
    assert gallery.purge_unknown(keep_days=7, max_faces=3, now=now + timedelta(days=8)) == 3
    assert gallery.unknown_count() == 0 and _forget_logged(gallery) == 7
    with pytest.raises(Exception, match="no unknown cluster"):
        gallery.forget_unknown(first[0])
