"""What the indexer scans: CSV and JSONL manifests, and <person>/<image> folders."""

from pathlib import Path

import pytest


def test_manifests_and_folders_are_scanned(tmp_path):
    from facesearch.sources import SourceError, scan

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"x")
    (tmp_path / "m.csv").write_text("path,identity_id,display_name\nimgs/a.jpg,alice,Alice A\n/abs/b.png,bob,\n")
    (tmp_path / "m.jsonl").write_text('{"path": "imgs/a.jpg", "identity_id": "alice", "display_name": "Alice A"}\n\n')
    csv_items, jsonl_items = scan(tmp_path / "m.csv"), scan(tmp_path / "m.jsonl")
    assert [(i.path, i.identity_id, i.display_name) for i in csv_items] == [
        (tmp_path / "imgs" / "a.jpg", "alice", "Alice A"), (Path("/abs/b.png"), "bob", "")]
    assert jsonl_items == csv_items[:1]
    (tmp_path / "bad.jsonl").write_text('{"path": "x.jpg"}\n')
    with pytest.raises(SourceError, match="row 1: needs path and identity_id"):
        scan(tmp_path / "bad.jsonl")
    with pytest.raises(SourceError, match="a folder, a .csv or a .jsonl"):
        scan(tmp_path / "imgs" / "a.jpg")
    folder = tmp_path / "gallery"
    (folder / "carol").mkdir(parents=True)
    (folder / "carol" / "1.jpg").write_bytes(b"x")
    (folder / "README.txt").write_text("top-level files are not identities")
    assert [(i.identity_id, i.path.name) for i in scan(folder)] == [("carol", "1.jpg")]
