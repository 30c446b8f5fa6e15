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


def hidden(module: str) -> str:
    """Python code that makes `module` (and its submodules) look uninstalled from then on."""
    return f"""
import importlib.abc, sys
class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
sys.meta_path.insert(0, Hidden())
"""


LOAD_ARCH = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("facenet_arch", sys.argv[1])
arch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arch)
"""

BUILD_AND_EMBED = LOAD_ARCH + """
import numpy as np
model = arch.build_inception_resnet_v1(128)
model.load_weights(sys.argv[2])
np.save(sys.argv[4], np.asarray(model.predict(np.load(sys.argv[3]), verbose=0)))
assert "tensorflow" not in sys.modules
"""


def test_facenet_builds_and_embeds_alike_on_jax_without_tensorflow(embedder, weights_cache, samples, tmp_path):
    """A GPU machine with JAX and no TensorFlow (bench/trainer_gpu.py): keras-facenet's architecture
    is read through Keras 3's own `tensorflow.keras` API, and with the same weights gives the same
    embeddings as the TensorFlow build the service runs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from facesearch.embedder import decode
    from facesearch.embedder import facenet_arch
    from facesearch.embedder.preprocess import preprocess

    pytest.importorskip("jax", reason="the JAX backend is not installed")
    crops = [decode(p.read_bytes()) for p in sorted(samples.glob("val/*/*.jpg"))[:4]]
    np.save(tmp_path / "x.npy", preprocess(crops))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", hidden("tensorflow") + BUILD_AND_EMBED, facenet_arch.__file__,
                           str(weights_cache.facenet_weights()), str(tmp_path / "x.npy"), str(tmp_path / "e.npy")],
                          env=env, capture_output=True, text=True, timeout=300, cwd=Path(facenet_arch.__file__).parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), embedder.embed_crops(crops), atol=1e-4)


def test_without_opencv_the_architecture_is_read_alone_and_a_real_tensorflow_is_left_in_place():
    """keras-facenet's package also needs OpenCV; without it the file is read alone, and the
    `tensorflow.keras` alias made for that must not replace an imported TensorFlow."""
    import subprocess
    import sys

    from facesearch.embedder import facenet_arch

    check = LOAD_ARCH + """
import tensorflow
arch._architecture()
assert sys.modules["tensorflow"] is tensorflow and "keras_facenet.embedding_model" not in sys.modules
"""
    proc = subprocess.run([sys.executable, "-c", hidden("cv2") + check, facenet_arch.__file__],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
