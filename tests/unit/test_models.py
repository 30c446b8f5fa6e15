"""Model registry errors that need no model: unknown specs, a network that hangs or refuses, broken exports."""

import socket
import threading
import time

import pytest

from facesearch.embedder import NetworkUnavailableError, UnknownModelError, WeightsError, models


def test_unknown_specs_are_refused_with_the_choices(weights_cache):
    with pytest.raises(UnknownModelError, match="unknown model 'facenet-512'"):
        models.load_model("facenet-512", weights_cache)
    with pytest.raises(UnknownModelError, match="20170512-110547"):
        models.load_model("keras-facenet:nope", weights_cache)


class _Silent(threading.Thread):
    """Accepts connections and never answers: a network that hangs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held = []

    def run(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return


@pytest.mark.parametrize("server", ["hang", "refuse"])
def test_keras_facenet_download_without_network_fails_fast(tmp_path, monkeypatch, server):
    from keras_facenet import metadata

    key = "20170512-110547"
    if server == "hang":
        silent = _Silent()
        silent.start()
        url = f"http://127.0.0.1:{silent.port}/weights.h5"
    else:
        url = "http://127.0.0.1:9/weights.h5"
    monkeypatch.setitem(metadata.MODEL_METADATA, key, {**metadata.MODEL_METADATA[key], "keras_weights_url": url})
    from facesearch.embedder import WeightsCache

    start = time.monotonic()
    with pytest.raises(NetworkUnavailableError, match="network did not answer") as info:
        models.load_model(f"keras-facenet:{key}", WeightsCache(tmp_path), download_timeout=1.0)
    assert time.monotonic() - start < 30  # a bound on hanging, not a speed figure
    assert url in str(info.value)


def test_broken_export_folders_are_refused(tmp_path):
    with pytest.raises(UnknownModelError, match="no model.json"):
        models.load_export(tmp_path)
    (tmp_path / models.EXPORT_MANIFEST).write_text('{"format": "facesearch-model/1", "model_id": "x", '
                                                   '"dimension": 128, "weights": "missing.weights.h5"}')
    with pytest.raises(WeightsError, match="missing"):
        models.load_export(tmp_path)


def test_the_fused_model_has_a_milvus_collection_of_its_own():
    from facesearch.gallery.milvus_names import collection_name

    assert collection_name("", models.FUSED_MODEL_ID, 0) == "facesearch_facenet_128_sface"
    assert collection_name("", models.FUSED_MODEL_ID, 2) == "facesearch_facenet_128_sface_g2"
    assert collection_name("", models.FUSED_MODEL_ID, 0) != collection_name("", models.DEFAULT_MODEL_ID, 0)


def test_the_trainer_refuses_to_fine_tune_the_fused_model_before_loading_anything(tmp_path):
    from facesearch.trainer.errors import TrainerError
    from facesearch.trainer.train import Run, TrainConfig

    cfg = TrainConfig(data=tmp_path, out=tmp_path / "out", model=models.FUSED_MODEL_ID)
    with pytest.raises(TrainerError, match=r"facenet-128\+sface cannot be fine-tuned.*--model facenet-128"):
        Run(cfg).prepare()
    assert not (tmp_path / "out").exists()
