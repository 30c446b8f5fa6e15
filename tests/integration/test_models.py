"""Model registry and loading: the real weights, checked layer by layer."""

import numpy as np
import pytest

from facesearch.embedder import Embedder, EmbedderConfig, WeightsError, models


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
