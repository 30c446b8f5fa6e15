"""facesearch-indexer cluster and enroll-clusters as users run them: subprocesses, real photos, model and gallery."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.test_indexer import indexer, stats

PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "mindy_kaling"]
CROWD = "jokejpg"   # a jerry_seinfeld photo with two small background faces beside his


def without_nearest(content: dict) -> dict:
    return {**content, "clusters": [{k: v for k, v in c.items() if not k.startswith("nearest_")}
                                    for c in content["clusters"]]}


@pytest.fixture(scope="module")
def run(tmp_path_factory, samples):
    """12 photos of 4 people and a broken file clustered; then two clusters enrolled into a new
    data directory; then the same photos clustered again against that gallery."""
    tmp = tmp_path_factory.mktemp("cluster")
    photos = tmp / "photos"
    for person in PEOPLE:
        files = sorted((samples / "val" / person).glob("*.jpg"))
        picked = files[:2] + [f for f in files if CROWD in f.name] if person == "jerry_seinfeld" else files[:3]
        (photos / person).mkdir(parents=True)
        for f in picked:
            shutil.copy(f, photos / person / f.name)
    (photos / "broken.jpg").write_bytes(b"not a photo")
    (photos / "notes.txt").write_text("not looked at: no image suffix")
    first = indexer(tmp / "unused", "cluster", photos, "--out", tmp / "a")
    assert first.returncode == 0, first.stderr
    content = json.loads((tmp / "a" / "clusters.json").read_text())

    # enrol c0001 twice over (the second row's faces are duplicates) and c0002; c0001 also gets two
    # faces that cannot be enrolled: a photo gone since, and a box where another photo has no face
    named = json.loads(json.dumps(content))
    c1 = named["clusters"][0]
    c1["faces"].append({**c1["faces"][0], "path": str(tmp / "gone.jpg")})
    c1["faces"].append({**named["clusters"][2]["faces"][0], "box": [0, 0, 20, 20]})
    (tmp / "named.json").write_text(json.dumps(named))
    with open(tmp / "names.csv", "w", newline="") as f:
        csv.writer(f).writerows([["cluster_id", "identity_id", "display_name"], ["c0001", "first", "First Person"],
                                 ["c0001", "first", ""], ["c0002", "second"]])
    data = tmp / "data"
    enrolled = indexer(data, "enroll-clusters", tmp / "named.json", "--names", tmp / "names.csv",
                       "--report", tmp / "report.json")
    again = indexer(tmp / "unused", "cluster", photos, "--out", tmp / "b", "--gallery", data)
    assert again.returncode == 0, again.stderr
    return {"tmp": tmp, "photos": photos, "first": first, "content": content, "enrolled": enrolled, "data": data,
            "again": json.loads((tmp / "b" / "clusters.json").read_text())}


def test_clusters_json_contract(run):
    c = run["content"]
    assert set(c) >= {"model_id", "max_distance", "min_faces", "clusters", "unclustered"}
    assert (c["model_id"], c["max_distance"], c["min_faces"], c["attach_distance"]) == ("facenet-128", 2.4, 2, 3.0)
    assert [x["id"] for x in c["clusters"]] == [f"c{i:04d}" for i in range(1, len(c["clusters"]) + 1)]
    sizes = [len(x["faces"]) for x in c["clusters"]]
    assert sizes == sorted(sizes, reverse=True) and sizes == [x["size"] for x in c["clusters"]]
    for face in [f for x in c["clusters"] for f in x["faces"]] + c["unclustered"]:
        path = Path(face["path"])
        assert path.is_absolute() and str(path) == str(path.resolve()) and path.is_file()
        assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
        assert 0.8 <= face["score"] <= 1.0
        assert (run["tmp"] / "a" / face["thumbnail"]).is_file()
    assert c["images"] == 13   # the 12 photos and broken.jpg; notes.txt is not a photo
    assert [Path(r["path"]).name for r in c["rejected"]] == ["broken.jpg"]
    assert run["first"].stdout.startswith("4 clusters (12 faces, largest 3), 2 faces unclustered")


def test_every_face_in_exactly_one_place_and_clusters_are_people(run):
    c = run["content"]
    places = [(f["path"], tuple(f["box"])) for x in c["clusters"] for f in x["faces"]] + \
             [(f["path"], tuple(f["box"])) for f in c["unclustered"]]
    assert len(places) == len(set(places)) == c["faces"]
    crowd = [p for p in places if CROWD in p[0]]
    assert len(crowd) == 3   # every face of a photo is kept, not only the main one
    assert len(c["clusters"]) == 4
    for x in c["clusters"]:   # one person per cluster, each person's 3 photos together
        assert len({Path(f["path"]).parent.name for f in x["faces"]}) == 1 and x["size"] == 3


def test_contact_sheet_opens_offline(run):
    html = (run["tmp"] / "a" / "index.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for x in run["content"]["clusters"]:
        assert f'id="{x["id"]}"' in html and f"{x['size']} faces" in html
        assert all(f'src="{f["thumbnail"]}"' in html for f in x["faces"])


def test_deterministic_and_gallery_names_the_enrolled_clusters(run):
    first, again = run["content"], run["again"]
    assert without_nearest(again) == first   # the same photos, the same answer
    thumbs = sorted((run["tmp"] / "a" / "faces").iterdir())
    assert len(thumbs) == first["faces"]
    assert all(p.read_bytes() == (run["tmp"] / "b" / "faces" / p.name).read_bytes() for p in thumbs)
    named = {x["id"]: x for x in again["clusters"]}
    assert named["c0001"]["nearest_identity"] == "first" and named["c0001"]["nearest_display_name"] == "First Person"
    assert named["c0002"]["nearest_identity"] == "second"
    for cid in ("c0001", "c0002"):   # the very faces enrolled: distance about 0, all agreeing
        assert named[cid]["nearest_distance"] < 0.05 and named[cid]["nearest_votes"] == named[cid]["size"]
    assert all(x["nearest_distance"] > 0.05 for x in again["clusters"][2:])


def test_enroll_clusters_round_trip(run):
    assert run["enrolled"].returncode == 0, run["enrolled"].stderr
    report = json.loads((run["tmp"] / "report.json").read_text())
    # the second c0001 row: its 3 faces and the bad box are duplicates (add's dedupe); the gone photo
    # is unreadable in both rows
    assert (report["added"], report["skipped"], report["identities_created"]) == (6, 4, 2)
    reasons = sorted(r["reason"] for r in report["rejections"])
    assert len(reasons) == 3 and all(r.startswith("cannot read the file") for r in reasons[:2])
    assert reasons[2] == "no face found at x=0 y=0 20x20"
    s = stats(run["data"])
    assert (s["identity_count"], s["face_count"]) == (2, 6)

    from facesearch.gallery import GalleryConfig
    from facesearch.gallery.schema import faces, identities
    from facesearch.gallery.sql import connect

    engine = connect(GalleryConfig(data_dir=run["data"]).url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(identities.c.identity_id, faces.c.source_path, faces.c.box_x, faces.c.box_y,
                                       faces.c.box_w, faces.c.box_h)
                                .join(identities, identities.c.id == faces.c.identity_pk)).all()
    finally:
        engine.dispose()
    expected = {(iid, f["path"], *f["box"]) for iid, cid in (("first", 0), ("second", 1))
                for f in run["content"]["clusters"][cid]["faces"]}
    assert {tuple(r) for r in rows} == expected   # each face enrolled at its cluster's box


def test_nearest_identity_through_a_server(server):
    """--server's search: Identify by embedding, voted per cluster."""
    import numpy as np

    from facesearch.client import FaceSearchClient
    from facesearch.indexer.cluster import nearest, server_search
    from tests.helpers import unit

    rng = np.random.default_rng(23)
    people = unit(rng, 2)
    faces = np.concatenate([people[[0, 0, 0]], people[[1, 1]]]) + rng.normal(scale=0.01, size=(5, 128))
    faces = (faces / np.linalg.norm(faces, axis=1, keepdims=True)).astype(np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    with FaceSearchClient(server.target, timeout=120) as client:
        client.enroll("cluster-test-a", embeddings=[people[0]], display_name="A", model_id="facenet-128")
        client.enroll("cluster-test-b", embeddings=[people[1]], model_id="facenet-128")
        found = nearest(labels, faces, server_search(client, "facenet-128"))
    assert [f["nearest_identity"] for f in found] == ["cluster-test-a", "cluster-test-b"]
    assert found[0]["nearest_display_name"] == "A"
    assert (found[0]["nearest_votes"], found[0]["nearest_queried"]) == (3, 3)
    assert all(0 < f["nearest_distance"] < 0.2 for f in found)
