"""Gallery calibration: applied in SQL for every process, stale after enrolment or deletion, recalibrated."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.gallery import CalibrationError, Gallery, GalleryConfig, InvalidTargetError, NewFace
from facesearch.gallery import calibration as cal

from .test_calibration import clustered


def open_gallery(path) -> Gallery:
    return Gallery.open(GalleryConfig(data_dir=path), model_id="test-model", dimension=128)


def enrol(g: Gallery, x, y, prefix="p") -> None:
    for label in np.unique(y):
        g.add_faces(f"{prefix}{label}", [NewFace(v) for v in x[y == label]])


def test_gallery_calibrate_is_the_pure_calibration_of_its_faces(tmp_path):
    x, y = clustered(12, 6, noise=0.1)
    with open_gallery(tmp_path) as g:
        enrol(g, x, y)
        labels, vectors, seq = g.labelled_vectors()
        assert len(labels) == 72 and seq == 72 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
        assert g.calibrate(target_fnir=0.02) == cal.calibrate(x, y, target_fnir=0.02)
        assert g.calibration_status() is None and g.calibrated_cutoff() is None   # not applied
        with pytest.raises(InvalidTargetError):
            g.calibrate(target_fpir=1.5)


def test_applied_calibration_survives_reopening_and_goes_stale_on_changes(tmp_path):
    x, y = clustered(12, 6, noise=0.1)
    with open_gallery(tmp_path) as g:
        enrol(g, x, y)
        applied = g.calibrate(target_fnir=0.02, apply=True)
        assert g.calibrated_cutoff() == applied.max_distance
    with open_gallery(tmp_path) as g:
        status = g.calibration_status()
        assert status.calibration == applied and not status.stale and status.calibrated_at.tzinfo is not None
        assert g.calibrated_cutoff() == applied.max_distance
        g.add_faces("newcomer", [NewFace(v) for v in clustered(1, 3, seed=9)[0]])
        assert g.calibration_status().changes_since == 3 and g.calibration_status().stale
        g.delete_identity("p0")
        assert g.calibration_status().changes_since == 9
        assert g.calibrated_cutoff() == applied.max_distance   # stale, still in use until recalibrated


def test_recalibrate_if_due_uses_the_last_targets_after_n_changes(tmp_path):
    x, y = clustered(40, 5, noise=0.1)
    with open_gallery(tmp_path) as g:
        enrol(g, x[y < 39], y[y < 39])
        assert g.recalibrate_if_due(1) is None                  # nothing applied yet
        first = g.calibrate(target_fpir=0.1, apply=True)
        g.add_faces("late", [NewFace(v) for v in x[y == 39][:2]])
        assert g.recalibrate_if_due(3) is None and g.calibration_status().changes_since == 2
        g.add_faces("late", [NewFace(v) for v in x[y == 39][2:]])
        again = g.recalibrate_if_due(3)
        assert again is not None and again.target_fpir == 0.1 and again.faces == first.faces + 5
        assert not g.calibration_status().stale and g.calibration_status().calibration == again


def test_recalibration_without_enough_data_keeps_the_applied_cutoff(tmp_path):
    x, y = clustered(2, 4, noise=0.1)
    with open_gallery(tmp_path) as g:
        enrol(g, x, y)
        applied = g.calibrate(apply=True)
        g.delete_identity("p1")                                  # one identity left
        with pytest.raises(CalibrationError, match="at least 2 identities"):
            g.calibrate()
        assert g.recalibrate_if_due(1) is None and g.calibration_status().calibration == applied


def test_reindex_drops_the_calibration_of_the_old_model(tmp_path):
    x, y = clustered(3, 3, noise=0.1)
    with open_gallery(tmp_path) as g:
        for label in range(3):
            g.add_faces(f"p{label}", [NewFace(v, crop_jpeg=b"jpeg") for v in x[y == label]])
        g.calibrate(apply=True)
        g.reindex("other-model", 128, lambda crops: clustered(1, len(crops), seed=5)[0])
        assert g.calibration_status() is None and g.calibrated_cutoff() is None


def test_indexer_calibrate_on_a_data_directory(tmp_path, capsys):
    import json

    from facesearch.indexer.cli import main

    x, y = clustered(12, 6, noise=0.1)
    with open_gallery(tmp_path) as g:
        enrol(g, x, y)
    assert main(["--data-dir", str(tmp_path), "calibrate", "--target-fnir", "0.02", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {**cal.calibrate(x, y, target_fnir=0.02).to_dict(), "applied": False}
    assert main(["--data-dir", str(tmp_path), "calibrate", "--apply"]) == 0
    assert "(applied): expected FPIR" in capsys.readouterr().out
    with open_gallery(tmp_path) as g:
        assert g.calibration_status().calibration.target_fnir == 0.01
        g.delete_identity("p0")
        for i in range(1, 12):
            g.delete_identity(f"p{i}")
    assert main(["--data-dir", str(tmp_path), "calibrate"]) == 2
    assert "at least 2 identities; the gallery has 0" in capsys.readouterr().err


def test_the_calibrated_cutoff_is_read_at_open_and_refreshed_off_the_callers_thread(tmp_path, monkeypatch):
    """The service asks for it on its event loop: a stale copy is answered at once and re-read aside."""
    import threading

    from facesearch.gallery import calibrated

    x, y = clustered(12, 6, noise=0.1)
    with open_gallery(tmp_path) as g:
        enrol(g, x, y)
        applied = g.calibrate(target_fnir=0.02, apply=True)
    with open_gallery(tmp_path) as g:
        assert g._cutoff_cache[1] == applied.max_distance   # read at open
        readers, real = [], calibrated.get_meta

        def recorded(conn, key):
            readers.append(threading.current_thread())
            return real(conn, key)

        monkeypatch.setattr(calibrated, "get_meta", recorded)
        monkeypatch.setattr(calibrated, "CALIBRATION_TTL_S", 0.0)   # always stale
        assert g.calibrated_cutoff() == applied.max_distance
        g._cutoff_refresh.join(10)
        assert readers and threading.current_thread() not in readers
