"""Hardware and determinism set-up for a training run (any Keras backend)."""

from __future__ import annotations

import logging

import keras

log = logging.getLogger(__name__)


def setup(seed: int, mixed_precision: bool = False) -> dict:
    """GPU memory growth on, seeded RNGs, optional mixed precision; returns what was found."""
    backend = keras.backend.backend()
    gpus = 0
    if backend == "tensorflow":
        import tensorflow as tf

        found = tf.config.list_physical_devices("GPU")
        for gpu in found:
            tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.experimental.enable_op_determinism()   # the same seed gives the same run
        gpus = len(found)
    elif backend == "jax":
        import jax

        gpus = sum(d.platform == "gpu" for d in jax.devices())
    elif backend == "torch":
        import torch

        gpus = torch.cuda.device_count()
    policy = "float32"
    if mixed_precision:
        if gpus:
            policy = "mixed_float16"
            keras.mixed_precision.set_global_policy(policy)
        else:
            log.warning("--mixed-precision needs a GPU; training in float32 on the CPU")
    keras.utils.set_random_seed(seed)
    return {"backend": backend, "gpus": gpus, "device": "gpu" if gpus else "cpu", "precision": policy}
