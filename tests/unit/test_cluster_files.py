"""cluster's inputs without the model: which files are photos, and names.csv against clusters.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesearch.indexer.cluster import named_items, photos
from facesearch.sources import SourceError


def test_photos_recursive_sorted_resolved_once(tmp_path):
    for rel in ("b/2.jpg", "b/1.PNG", "a/deep/3.webp", "a/notes.txt", ".hidden/4.jpg", "a/.5.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = photos([tmp_path, tmp_path / "b" / "2.jpg", str(tmp_path / "a" / ".." / "b" / "1.PNG")])
    assert found == [(tmp_path / p).resolve() for p in ("a/deep/3.webp", "b/1.PNG", "b/2.jpg")]
    with pytest.raises(SourceError):
        photos([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no photos found"):
        photos([tmp_path / "empty"])


def test_named_items(tmp_path):
    content = {"clusters": [{"id": "c0001", "faces": [{"path": "/p/1.jpg", "box": [1, 2, 3, 4], "score": 0.9}]},
                            {"id": "c0002", "faces": [{"path": "/p/2.jpg", "box": [5, 6, 7, 8], "score": 0.9},
                                                      {"path": "/p/3.jpg", "box": [0, 0, 9, 9], "score": 0.9}]}],
               "unclustered": []}
    clusters = tmp_path / "clusters.json"
    clusters.write_text(json.dumps(content))
    names = tmp_path / "names.csv"
    names.write_text("cluster_id,identity_id,display_name\nc0002, bob ,Bob B\n\nc0001,alice\n")
    items = named_items(clusters, names)
    assert [(str(i.path), i.identity_id, i.display_name, i.box) for i in items] == [
        ("/p/2.jpg", "bob", "Bob B", (5, 6, 7, 8)), ("/p/3.jpg", "bob", "Bob B", (0, 0, 9, 9)),
        ("/p/1.jpg", "alice", "", (1, 2, 3, 4))]
    names.write_text("c0001,alice\n")   # no header
    assert [i.identity_id for i in named_items(clusters, names)] == ["alice"]
    for bad in ("c0009,alice\n", "c0001\n", "c0001,\n"):
        names.write_text(bad)
        with pytest.raises(SourceError):
            named_items(clusters, names)
    with pytest.raises(SourceError):
        named_items(tmp_path / "nothing.json", names)
    assert Path(items[0].path).is_absolute()
