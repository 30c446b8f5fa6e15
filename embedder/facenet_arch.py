"""FaceNet's network, Inception-ResNet-v1, as keras-facenet defines it: built under any Keras backend.

Imports only keras and keras-facenet's architecture file, so that the trainer's network builds
on a machine with JAX or PyTorch and no TensorFlow (docs/models.md#facenet-without-tensorflow).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Any

IMAGE_SIZE = 160
_BUILD_LOCK = threading.Lock()   # build_inception_resnet_v1 swaps a module attribute while it builds
_irv1: Any = None


def _architecture() -> Any:
    """keras-facenet's inception_resnet_v1 module. It imports `tensorflow.keras`, which TensorFlow
    resolves to Keras 3's `keras._tf_keras.keras`. Where its package cannot be imported (no TensorFlow,
    which its __init__ needs, or no OpenCV), the architecture file alone is read, with that alias
    made here only while it runs."""
    global _irv1
    if _irv1 is None:
        try:
            from keras_facenet import inception_resnet_v1   # its package imports TensorFlow and OpenCV

            _irv1 = inception_resnet_v1
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in ("tensorflow", "cv2", "scipy"):
                raise
            _irv1 = _read_without_tensorflow()
    return _irv1


def _read_without_tensorflow() -> Any:
    from keras._tf_keras import keras as tf_keras

    package = importlib.util.find_spec("keras_facenet")
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("keras-facenet is not installed (pip install keras-facenet)", name="keras_facenet")
    path = Path(next(iter(package.submodule_search_locations))) / "inception_resnet_v1.py"
    aliases = {"tensorflow": types.ModuleType("tensorflow"), "tensorflow.keras": tf_keras,
               "tensorflow.keras.models": tf_keras.models, "tensorflow.keras.layers": tf_keras.layers,
               "tensorflow.keras.backend": tf_keras.backend}
    spec = importlib.util.spec_from_file_location("facesearch_keras_facenet_irv1", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    before = {name: sys.modules[name] for name in aliases if name in sys.modules}   # a real TensorFlow stays
    sys.modules.update(aliases)
    try:
        spec.loader.exec_module(module)
    finally:
        for name in aliases:
            sys.modules.pop(name, None)
        sys.modules.update(before)
    return module


def build_inception_resnet_v1(dimension: int, image_size: int = IMAGE_SIZE) -> Any:
    """keras-facenet's InceptionResNetV1, with its last layer (an L2 normalisation) as a Keras layer.

    keras-facenet's `normalize` is a Lambda over a TensorFlow-only backend function,
    which other Keras backends (KERAS_BACKEND=jax) cannot build; UnitNormalization
    computes the same thing with keras.ops. It has no weights, so the files load alike.
    """
    import keras

    irv1 = _architecture()

    def lambda_layer(function: Any, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
        if name == "normalize":
            return keras.layers.UnitNormalization(axis=1, name=name)
        return keras.layers.Lambda(function, *args, name=name, **kwargs)

    with _BUILD_LOCK:
        original, irv1.Lambda = irv1.Lambda, lambda_layer
        try:
            return irv1.InceptionResNetV1(input_shape=(image_size, image_size, 3), classes=dimension)
        finally:
            irv1.Lambda = original
