"""Splitting FaceNet into a frozen base and a trainable head (keras only).

The cut sits at the input of the first layer of a block (default Block8_6, the
seed's "everything frozen except the last block"). Everything below the cut is
frozen, so its output can be computed once and cached; only the head runs per
training step. BatchNorm layers stay frozen everywhere, as in the seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

DEFAULT_TRAINABLE_FROM = "Block8_6"
_BLOCK = re.compile(r"^(Block\d+_\d+|Mixed_\d+[a-z]|Conv2d_\d+[a-z]_\d+x\d+|AvgPool|Dropout|Bottleneck)")


@dataclass
class SplitModel:
    full: keras.Model     # image -> embedding; shares its layers with base and head
    base: keras.Model     # image -> features at the cut (frozen)
    head: keras.Model     # features -> embedding (trainable layers, frozen BatchNorm)
    trainable_from: str

    @property
    def feature_shape(self) -> tuple:
        return tuple(self.base.output.shape[1:])

    def trainable_layers(self) -> list:
        return [layer for layer in self.full.layers if layer.trainable and layer.weights]


def block_names(model: keras.Model) -> list[str]:
    """Names --trainable-from accepts, last block first."""
    names = []
    for layer in model.layers:
        m = _BLOCK.match(layer.name)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names[::-1]


def split(full: keras.Model, trainable_from: str = DEFAULT_TRAINABLE_FROM) -> SplitModel:
    import keras  # here, so that the CLI's --help does not wait for the backend to load

    layers = full.layers
    first = next((i for i, layer in enumerate(layers)
                  if layer.name == trainable_from or layer.name.startswith(trainable_from + "_")), None)
    if first is None:
        from .errors import TrainerError

        raise TrainerError(f"--trainable-from {trainable_from!r} names no layer of the model; "
                           f"blocks, last first: {', '.join(block_names(full)[:12])}, ...")
    cut = layers[first].input
    try:
        if isinstance(cut, (list, tuple)):
            raise ValueError("the layer has several inputs")
        head = keras.Model(cut, full.output, name="head")
    except ValueError as exc:
        from .errors import TrainerError

        raise TrainerError(f"--trainable-from {trainable_from!r} is not a block boundary ({exc}); "
                           f"use a block name such as {', '.join(block_names(full)[:6])}") from None
    base = keras.Model(full.input, cut, name="base")
    in_head = {id(layer) for layer in head.layers}
    for layer in full.layers:
        layer.trainable = id(layer) in in_head and not isinstance(layer, keras.layers.BatchNormalization)
    return SplitModel(full, base, head, trainable_from)
