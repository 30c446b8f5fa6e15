"""Triplet losses on squared distances of unit embeddings (keras.ops only, any backend).

y_pred holds embeddings, y_true their class labels.
- random:     rows come as (anchor, positive, negative) triples: the seed's loss.
- batch-hard: each anchor with its farthest positive and nearest negative in the
              batch (Hermans et al. 2017).
- semi-hard:  each (anchor, positive) pair with the nearest negative farther than
              the positive; the farthest negative where there is none (FaceNet §3.2).
"""

from __future__ import annotations

from keras import ops

from .sampling import MININGS

_BIG = 1e9


def pairwise_squared(e):
    sq = ops.sum(e * e, axis=1)
    d = ops.expand_dims(sq, 1) + ops.expand_dims(sq, 0) - 2.0 * ops.matmul(e, ops.transpose(e))
    return ops.maximum(d, 0.0)


def _masks(labels):
    labels = ops.reshape(labels, (-1,))
    same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0))
    eye = ops.cast(ops.eye(ops.shape(labels)[0]), "bool")
    return ops.logical_and(same, ops.logical_not(eye)), ops.logical_not(same)


def _masked_mean(values, mask):
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def random_triplet_loss(embeddings, margin):
    t = ops.reshape(embeddings, (-1, 3, ops.shape(embeddings)[-1]))
    a, p, n = t[:, 0], t[:, 1], t[:, 2]
    d_ap = ops.sum(ops.square(a - p), axis=1)
    d_an = ops.sum(ops.square(a - n), axis=1)
    return ops.mean(ops.relu(d_ap - d_an + margin))


def batch_hard_loss(labels, embeddings, margin):
    d = pairwise_squared(embeddings)
    pos, neg = _masks(labels)
    hardest_pos = ops.max(ops.where(pos, d, 0.0), axis=1)
    hardest_neg = ops.min(ops.where(neg, d, _BIG), axis=1)
    valid = ops.logical_and(ops.any(pos, axis=1), ops.any(neg, axis=1))
    return _masked_mean(ops.relu(hardest_pos - hardest_neg + margin), valid)


def semi_hard_loss(labels, embeddings, margin):
    d = pairwise_squared(embeddings)
    pos, neg = _masks(labels)
    d_ap = ops.expand_dims(d, 2)                     # (anchor, positive, 1)
    d_an = ops.expand_dims(d, 1)                     # (anchor, 1, negative)
    neg3 = ops.expand_dims(neg, 1)
    outside = ops.logical_and(neg3, ops.greater(d_an, d_ap))
    nearest_outside = ops.min(ops.where(outside, d_an, _BIG), axis=2)
    farthest_inside = ops.expand_dims(ops.max(ops.where(neg, d, -_BIG), axis=1), 1)
    chosen = ops.where(ops.any(outside, axis=2), nearest_outside, farthest_inside)
    valid = ops.logical_and(pos, ops.expand_dims(ops.any(neg, axis=1), 1))
    return _masked_mean(ops.relu(ops.squeeze(d_ap, 2) - chosen + margin), valid)


def triplet_loss(mining: str, margin: float):
    """A keras loss function (y_true = labels, y_pred = embeddings) for compile()."""
    if mining == "random":
        def loss(y_true, y_pred):
            return random_triplet_loss(y_pred, margin)
    elif mining == "batch-hard":
        def loss(y_true, y_pred):
            return batch_hard_loss(y_true, y_pred, margin)
    elif mining == "semi-hard":
        def loss(y_true, y_pred):
            return semi_hard_loss(y_true, y_pred, margin)
    else:
        raise ValueError(f"unknown mining {mining!r}; choose one of {', '.join(MININGS)}")
    loss.__name__ = f"triplet_{mining.replace('-', '_')}"
    return loss
