"""Model registry and loading: the real weights, checked layer by layer."""

import socket
import threading
import time

import numpy as np
import pytest

from facesearch.embedder import (
    Embedder,
    EmbedderConfig,
    NetworkUnavailableError,
    UnknownModelError,
    WeightsError,
    models,
)


def test_default_model_loads_all_245_weighted_layers(embedder, weights_cache):
    assert embedder.model_id == "facenet-128" and embedder.dimension == 128
    assert models.verify_loaded_weights(embedder.model.keras_model, weights_cache.facenet_weights()) == 245


def test_verification_catches_a_layer_that_did_not_load(weights_cache):
    model = models.build_inception_resnet_v1(128)
    model.load_weights(str(weights_cache.facenet_weights()))
    layer = model.get_layer("Block8_6_Conv2d_1x1")
    layer.set_weights([np.zeros_like(a) for a in layer.get_weights()])
    with pytest.raises(WeightsError, match="Block8_6_Conv2d_1x1: weights differ"):
        models.verify_loaded_weights(model, weights_cache.facenet_weights())


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


def test_exported_model_folder_loads_and_embeds_identically(embedder, tmp_path, samples):
    from facesearch.embedder import decode

    folder = models.write_export(embedder.model, tmp_path / "export", "facenet-128-copy")
    loaded = Embedder.load(EmbedderConfig.from_env(model=str(folder)))
    assert loaded.model_id == "facenet-128-copy" and loaded.dimension == 128
    crops = [decode(p.read_bytes()) for p in sorted(samples.glob("val/*/*.jpg"))[:3]]
    np.testing.assert_allclose(loaded.embed_crops(crops), embedder.embed_crops(crops), atol=1e-5)

    weights = folder / "model.weights.h5"      # one flipped byte: the checksum refuses the folder
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        models.load_export(folder)


def test_broken_export_folders_are_refused(tmp_path):
    with pytest.raises(UnknownModelError, match="no model.json"):
        models.load_export(tmp_path)
    (tmp_path / models.EXPORT_MANIFEST).write_text('{"format": "facesearch-model/1", "model_id": "x", '
                                                   '"dimension": 128, "weights": "missing.weights.h5"}')
    with pytest.raises(WeightsError, match="missing"):
        models.load_export(tmp_path)
