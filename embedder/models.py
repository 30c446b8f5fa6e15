"""Model registry: turns a model spec into a loaded Keras model.

Specs:
  facenet-128            the default: keras-facenet's InceptionResNetV1(classes=128)
                         with the seed's MS-Celeb-1M weights facenet_keras.h5
  facenet-128+sface      facenet-128 and OpenCV Zoo's SFace, fused into one 256-d embedding
                         (docs/models.md#the-fused-model)
  keras-facenet:<key>    keras-facenet's own FaceNet class and download
                         (keys: 20180402-114759, 20180408-102900, 20170511-185253, 20170512-110547)
  <path>                 a folder exported by the trainer, holding EXPORT_MANIFEST
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from facesearch.files import fsync_path, sha256_file

from .errors import NetworkUnavailableError, UnknownModelError, WeightsError
from .facenet_arch import IMAGE_SIZE, build_inception_resnet_v1
from .preprocess import STANDARDIZERS
from .sface import DIMENSION as SFACE_DIMENSION
from .sface import SFace
from .weights import WeightsCache

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "facenet-128"
FUSED_MODEL_ID = "facenet-128+sface"
# The fused model's halves are weighted by w_i^2 = 1 / sigma_i, sigma_i the spread of each model's
# squared-L2 distances: the root mean square of the genuine and the impostor standard deviations, on
# the 5-celebrity train photos, MTCNN's and YuNet's crops averaged (bench/models.py prints them). Then the
# fused squared distance is the sum of the two models' distances, each scaled by its spread (a z-score).
FUSION_SPREADS = (0.304, 0.285)   # FaceNet, SFace
KERAS_FACENET_PREFIX = "keras-facenet:"
EXPORT_MANIFEST = "model.json"
EXPORT_FORMAT = "facesearch-model/1"


@dataclass
class LoadedModel:
    model_id: str
    dimension: int
    keras_model: Any  # keras.Model (untyped): (N, size, size, 3) float32 -> (N, dimension), or FaceNet's part when fused
    image_size: int = IMAGE_SIZE
    standardization: str = "per_image"
    sface: SFace | None = None   # the fused model's second half (the Keras model is the first)

    @property
    def fusion_weights(self) -> tuple[float, float]:
        """(w_facenet, w_sface), scaled so that w_facenet^2 + w_sface^2 = 1."""
        inverse = [1.0 / s for s in FUSION_SPREADS]
        return float(np.sqrt(inverse[0] / sum(inverse))), float(np.sqrt(inverse[1] / sum(inverse)))


def load_model(spec: str, cache: WeightsCache, *, download_timeout: float = 15.0) -> LoadedModel:
    """Resolve and load a model spec; see the module docstring."""
    if spec == DEFAULT_MODEL_ID:
        return _load_facenet_128(cache)
    if spec == FUSED_MODEL_ID:
        facenet = _load_facenet_128(cache)
        return LoadedModel(FUSED_MODEL_ID, facenet.dimension + SFACE_DIMENSION, facenet.keras_model,
                           sface=SFace.load(cache))
    if spec.startswith(KERAS_FACENET_PREFIX):
        return _load_keras_facenet(spec[len(KERAS_FACENET_PREFIX):], cache, download_timeout)
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_export(path)
    raise UnknownModelError(
        f"unknown model {spec!r}: use {DEFAULT_MODEL_ID!r}, {FUSED_MODEL_ID!r}, '{KERAS_FACENET_PREFIX}<key>', "
        f"or the path of a folder exported by facesearch-trainer"
    )


def _load_facenet_128(cache: WeightsCache) -> LoadedModel:
    h5 = cache.facenet_weights()
    model = build_inception_resnet_v1(128)
    model.load_weights(str(h5))
    verify_loaded_weights(model, h5)
    return LoadedModel(DEFAULT_MODEL_ID, 128, model)


def verify_loaded_weights(model: Any, h5_path: Path) -> int:
    """Check that every layer with weights got exactly the file's arrays.

    Returns the number of layers checked; raises WeightsError otherwise.
    """
    import h5py

    with h5py.File(h5_path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        stored = {}
        for name in group.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            names = [n.decode() if isinstance(n, bytes) else n for n in group[name].attrs["weight_names"]]
            if names:
                stored[name] = [np.asarray(group[name][n]) for n in names]
    layers = [layer for layer in model.layers if layer.weights]
    problems = []
    for layer in layers:
        arrays = stored.pop(layer.name, None)
        current = layer.get_weights()
        if arrays is None:
            problems.append(f"{layer.name}: not in the file")
        elif len(arrays) != len(current) or any(
            a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(arrays, current)
        ):
            problems.append(f"{layer.name}: weights differ from the file")
    problems += [f"{name}: in the file but not in the model" for name in stored]
    if problems:
        raise WeightsError(
            f"{len(problems)} layer(s) did not load from {h5_path.name}: " + "; ".join(problems[:5])
        )
    log.info("verified weights of %d layers from %s", len(layers), h5_path.name)
    return len(layers)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _load_keras_facenet(key: str, cache: WeightsCache, timeout: float) -> LoadedModel:
    import keras_facenet
    from keras_facenet import metadata

    meta = metadata.MODEL_METADATA.get(key)
    if meta is None:
        raise UnknownModelError(
            f"unknown keras-facenet key {key!r}; choose one of {', '.join(sorted(metadata.MODEL_METADATA))}"
        )
    folder = cache.root / "keras-facenet"
    try:
        # keras-facenet downloads with urllib and no timeout; bound every socket operation.
        with _socket_timeout(timeout):
            fetch_keras_facenet_weights(meta, folder, cache)
            facenet = keras_facenet.FaceNet(key=key, cache_folder=str(folder))  # finds the verified file
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkUnavailableError(
            f"keras-facenet:{key} needs to download its weights from {meta['keras_weights_url']} "
            f"and the network did not answer ({type(reason).__name__}: {reason}). "
            f"Use the default model {DEFAULT_MODEL_ID!r}, or copy the weights file into {folder / meta['dir_name']}"
        ) from None
    except AssertionError as exc:
        raise WeightsError(f"keras-facenet:{key} weights fail their sha256 check: {exc}") from None
    standardization = "fixed" if meta["fixed_image_standardization"] else "per_image"
    return LoadedModel(f"keras-facenet:{key}", int(meta["dimensions"]), facenet.model,
                       int(meta["image_size"]), standardization)


def fetch_keras_facenet_weights(meta: dict[str, Any], folder: Path, cache: WeightsCache) -> Path:
    """keras-facenet's weights file, fetched under the cache lock into a temporary file,
    checked against its sha256, then renamed into place: no process ever sees a partial file."""
    from keras_facenet.utils import download_and_verify, sha256sum

    final: Path = folder / meta["dir_name"] / meta["keras_weights_filename"]
    with cache.lock():
        if final.is_file() and sha256sum(str(final)) == meta["keras_weights_sha256"]:
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(f".{final.name}.{os.getpid()}.part")
        try:
            download_and_verify(meta["keras_weights_url"], str(part), meta["keras_weights_sha256"])
            os.replace(part, final)
            fsync_path(final.parent)
        finally:
            part.unlink(missing_ok=True)
    return final


def load_export(folder: Path) -> LoadedModel:
    """Load a model folder written by the trainer (EXPORT_MANIFEST + Keras weights)."""
    manifest_path = folder / EXPORT_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise UnknownModelError(f"{folder} is not an exported model: it has no {EXPORT_MANIFEST}") from None
    except ValueError as exc:
        raise UnknownModelError(f"{manifest_path} is not valid JSON: {exc}") from None
    if manifest.get("format") != EXPORT_FORMAT:
        raise UnknownModelError(f"{manifest_path} has format {manifest.get('format')!r}, expected {EXPORT_FORMAT!r}")
    try:
        model_id = str(manifest["model_id"])
        dimension = int(manifest["dimension"])
        image_size = int(manifest.get("image_size", IMAGE_SIZE))
        standardization = manifest.get("standardization", "per_image")
        weights = folder / manifest["weights"]
    except (KeyError, TypeError, ValueError) as exc:
        raise UnknownModelError(f"{manifest_path} lacks a valid field: {exc}") from None
    if standardization not in STANDARDIZERS:
        raise UnknownModelError(f"{manifest_path}: unknown standardization {standardization!r}")
    if manifest.get("architecture", "inception_resnet_v1") != "inception_resnet_v1":
        raise UnknownModelError(f"{manifest_path}: unknown architecture {manifest.get('architecture')!r}")
    if not weights.is_file():
        raise WeightsError(f"{manifest_path} names weights {weights.name}, which are missing")
    expected, actual = manifest.get("weights_sha256"), sha256_file(weights)
    if expected != actual:
        raise WeightsError(f"{weights} has sha256 {actual[:16]}..., but {EXPORT_MANIFEST} says "
                           f"{str(expected)[:16]}...: the export is corrupt or was changed; export it again")
    model = build_inception_resnet_v1(dimension, image_size)
    try:
        model.load_weights(str(weights))
    except Exception as exc:  # Keras raises ValueError/KeyError on mismatched files
        raise WeightsError(f"{weights} does not fit the model: {exc}") from None
    return LoadedModel(model_id, dimension, model, image_size, standardization)


def write_export(loaded: LoadedModel, folder: Path, model_id: str, **extra: Any) -> Path:
    """Write a model folder that load_export reads: the weights, and EXPORT_MANIFEST with their sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    weights_name = "model.weights.h5"
    loaded.keras_model.save_weights(str(folder / weights_name))
    manifest = {
        "format": EXPORT_FORMAT,
        "weights_sha256": sha256_file(folder / weights_name),
        "model_id": model_id,
        "architecture": "inception_resnet_v1",
        "dimension": loaded.dimension,
        "image_size": loaded.image_size,
        "standardization": loaded.standardization,
        "weights": weights_name,
        **extra,
    }
    (folder / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
