import numpy as np
import pytest

from facesearch.embedder import distances as dist

from tests.helpers import unit


def test_scale_matches_the_seeds_stacked_384d_distance():
    rng = np.random.default_rng(0)
    a, b = unit(rng, 2)
    seed = float(np.sum((np.tile(a, 3) - np.tile(b, 3)) ** 2))  # the seed's 3 stacked copies
    assert dist.distance(a, b) == pytest.approx(seed, rel=1e-5)


def test_range_is_0_to_12():
    rng = np.random.default_rng(1)
    (a,) = unit(rng, 1)
    assert dist.distance(a, a) == 0.0
    assert dist.distance(a, -a) == pytest.approx(dist.MAX_DISTANCE) == pytest.approx(12.0)


def test_pairwise_agrees_with_distance_and_faiss_conversion_roundtrips():
    rng = np.random.default_rng(2)
    a, b = unit(rng, 4), unit(rng, 3)
    d = dist.pairwise(a, b)
    assert d.shape == (4, 3) and d.dtype == np.float32
    for i in range(4):
        for j in range(3):
            assert d[i, j] == pytest.approx(dist.distance(a[i], b[j]), abs=1e-4)
    sq = ((a[:, None] - b[None]) ** 2).sum(-1)
    np.testing.assert_allclose(dist.from_squared_l2(sq), d, atol=1e-4)
    np.testing.assert_allclose(dist.to_squared_l2(dist.from_squared_l2(sq)), sq, rtol=1e-6)
    assert dist.to_squared_l2(dist.DEFAULT_CUTOFF) == pytest.approx(3.5 / 3)


def test_l2_normalize_gives_unit_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    y = dist.l2_normalize(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[0], [0.6, 0.8])
    assert np.all(np.isfinite(y))
