"""facesearch-trainer as users run it: the CLI in a subprocess trains and exports a model, the
server serves the export, the same code trains under KERAS_BACKEND=jax, and errors are clear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facesearch.client import FaceSearchClient
from facesearch.embedder import FaceMode
from facesearch.testing import ServerProcess


def trainer_cli(*args, timeout=900, env=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "facesearch.trainer", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def exported(sample_crops, trainer_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model"
    r = trainer_cli("train", "--data", sample_crops, "--out", out, "--face-mode", "cropped", "--epochs", 1,
                    "--batch-size", 8, "--steps-per-epoch", 2, "--augment-copies", 2, "--test-fraction", 0.25,
                    "--cache-dir", trainer_cache, "--model-id", "sample-ft", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "top-1, one anchor per person" in r.stdout and "exported sample-ft" in r.stdout
    return out


def test_export_holds_weights_manifest_report_and_plots(exported):
    manifest = json.loads((exported / "model.json").read_text())
    assert manifest["model_id"] == "sample-ft" and manifest["base_model"] == "facenet-128"
    assert manifest["dimension"] == 128 and manifest["preprocessing"]["standardization"] == "per_image"
    assert manifest["training"]["margin"] == 0.9 and manifest["training"]["mining"] == "random"
    assert set(manifest["metrics"]) == {"before", "after"} and len(manifest["weights_sha256"]) == 64
    assert isinstance(manifest["recommended_max_distance"], float)
    report = json.loads((exported / "report.json").read_text())
    assert report["steps"] == 2 and len(report["history"]) == 2
    for png in ("distances.png", "roc.png", "loss.png"):
        assert (exported / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (exported / "checkpoint").exists()


def test_the_server_serves_the_export_and_galleries_never_mix(exported, tmp_path, sample_crops, sample_people,
                                                              embedder):
    from facesearch.embedder import decode
    from facesearch.gallery import Gallery, GalleryConfig, NewFace

    first, second = sample_people[:2]
    crops = {p: sorted((sample_crops / p).iterdir()) for p in (first, second)}
    mixed = tmp_path / "facenet-128-gallery"
    g = Gallery.open(GalleryConfig(data_dir=mixed), model_id="facenet-128", dimension=128)
    g.add_faces(first, [NewFace(embedder.embed_crops([decode(crops[first][0].read_bytes())])[0])])
    g.close()
    with pytest.raises(RuntimeError, match="embedded by 'facenet-128'.*not 'sample-ft'"):
        ServerProcess(mixed, env={"FACESEARCH_MODEL": str(exported)}).start()

    server = ServerProcess(tmp_path / "served", env={"FACESEARCH_MODEL": str(exported)})
    server.start()
    try:
        with FaceSearchClient(server.target, timeout=120) as client:
            assert client.info().model_id == "sample-ft"
            for person, files in crops.items():
                client.enroll(person, [f.read_bytes() for f in files[:3]], face_mode=FaceMode.CROPPED)
            reply = client.identify(crops[second][3].read_bytes(), face_mode=FaceMode.CROPPED)
            assert reply.model_id == "sample-ft" and reply.faces[0].matches[0].identity_id == second
    finally:
        server.stop()


def test_the_same_training_code_runs_under_jax(sample_crops, sample_people, trainer_cache, tmp_path, embedder):
    """keras/keras.ops only: KERAS_BACKEND=jax trains, and TensorFlow serves what it exported."""
    out = tmp_path / "jax-model"
    r = trainer_cli("train", "--data", sample_crops, "--out", out, "--face-mode", "cropped", "--epochs", 1, "--batch-size", 8,
                    "--steps-per-epoch", 2, "--augment-copies", 2, "--test-fraction", 0.25, "--cache-dir", trainer_cache,
                    "--mining", "semi-hard", "--margin", 2.0, "--lr", 1e-4, "--model-id", "jax-ft", "--no-progress",
                    env={"KERAS_BACKEND": "jax"})
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["hardware"]["backend"] == "jax" and len(report["history"]) == 2
    assert all(np.isfinite(h["loss"]) and h["loss"] > 0 for h in report["history"])
    from facesearch.embedder import Embedder, EmbedderConfig, decode

    served = Embedder.load(EmbedderConfig.from_env(model=str(out)))
    crops = [decode(p.read_bytes()) for p in sorted((sample_crops / sample_people[0]).iterdir())[:2]]
    e = served.embed_crops(crops)
    assert served.model_id == "jax-ft" and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert not np.allclose(e, embedder.embed_crops(crops), atol=1e-6)   # the trained head changed something


def test_cli_errors_are_clear(tmp_path):
    r = trainer_cli("calibrate", "--data", tmp_path / "nowhere", "--model", "facenet-128")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
