"""gallery.calibration against brute force over all pairs, the precedence of cutoffs, and too little data."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.gallery import calibration as cal
from facesearch.gallery.errors import CalibrationError, InvalidTargetError


def clustered(identities: int, per: int | list[int], dim: int = 128, noise: float = 0.09, seed: int = 0):
    """Unit vectors: identities as random centres, each with several noisy faces."""
    rng = np.random.default_rng(seed)
    sizes = [per] * identities if isinstance(per, int) else per
    centres = rng.normal(size=(len(sizes), dim))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    x = centres[labels] / np.linalg.norm(centres[labels], axis=1, keepdims=True)
    x = x + noise * rng.normal(size=(len(labels), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def brute_force(x, y):
    """Each face's nearest other same-identity face and nearest other-identity face, from every pair."""
    d = 3.0 * ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    same = y[:, None] == y[None, :]
    np.fill_diagonal(d, np.inf)
    return np.where(same, d, np.inf).min(1), np.where(~same, d, np.inf).min(1)


def test_both_estimates_equal_brute_force_on_a_small_gallery():
    # uneven identities, one alone, one large enough that its faces' 32 nearest are all its own
    x, y = clustered(12, [1, 2, 3, 5, 8, 8, 8, 13, 40, 2, 6, 7], noise=0.2)
    gen, imp = brute_force(x, y)
    nb = cal.neighbours(x, y)
    assert nb.faces == nb.total_faces == len(x) and not nb.sampled and nb.identities == 12
    np.testing.assert_allclose(nb.genuine, gen, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(nb.impostor, imp, rtol=1e-4, atol=1e-4)
    assert nb.genuine_comparisons == len(x) - 1 and nb.impostor_comparisons == len(x)
    for t in np.linspace(0.1, 8, 40):
        missed = ((gen > t) | (imp < gen))[np.isfinite(gen)]
        assert nb.fnir(t) == pytest.approx(missed.mean())
        assert nb.fpir(t) == pytest.approx((imp <= t).mean())
    fpir, fnir = cal.curves(nb, np.linspace(0.1, 8, 40))
    assert fpir == pytest.approx([nb.fpir(t) for t in np.linspace(0.1, 8, 40)])
    assert fnir == pytest.approx([nb.fnir(t) for t in np.linspace(0.1, 8, 40)])


def test_chosen_cutoffs_meet_their_targets_and_are_the_tightest():
    x, y = clustered(30, 6, noise=0.12)
    gen, imp = brute_force(x, y)
    c = cal.calibrate(x, y, target_fnir=0.05)
    assert (c.target_fnir, c.target_fpir) == (0.05, 0.0)
    missed = lambda t: ((gen > t) | (imp < gen)).mean()   # noqa: E731
    assert missed(c.max_distance + 1e-4) <= 0.05 < missed(c.max_distance - 1e-4)   # float32 vs float64
    nb = cal.neighbours(x, y)
    assert c.expected_fnir == nb.fnir(c.max_distance) <= 0.05 and c.expected_fpir == nb.fpir(c.max_distance)
    assert (c.identities, c.genuine_comparisons, c.impostor_comparisons) == (30, 180, 180)

    f = cal.calibrate(x, y, target_fpir=0.06)
    assert (imp <= f.max_distance - 1e-4).mean() <= 0.06 < (imp <= f.max_distance + 1e-3).mean()
    assert f.expected_fpir == nb.fpir(f.max_distance) <= 0.06 and f.expected_fnir == nb.fnir(f.max_distance)
    # target_fnir decides when both are set; both unset means target_fnir 0.01
    assert cal.calibrate(x, y, target_fpir=0.06, target_fnir=0.05).max_distance == c.max_distance
    assert cal.calibrate(x, y).target_fnir == cal.DEFAULT_TARGET_FNIR


def test_a_target_below_the_floor_fails_with_the_floor():
    x, y = clustered(20, 4, noise=0.5)   # so noisy that other identities often come nearer
    gen, imp = brute_force(x, y)
    floor = (imp < gen).mean()
    assert floor > 0.01
    with pytest.raises(CalibrationError, match="at least") as info:
        cal.calibrate(x, y, target_fnir=0.01)
    assert info.value.floor == pytest.approx(floor)
    assert cal.calibrate(x, y, target_fnir=min(floor + 0.05, 0.99)).expected_fnir <= floor + 0.05


def test_not_enough_data_says_what_is_missing():
    x, y = clustered(1, 6)
    with pytest.raises(CalibrationError, match="at least 2 identities; the gallery has 1"):
        cal.calibrate(x, y)
    x, y = clustered(5, 1)
    with pytest.raises(CalibrationError, match="identities with at least 2 faces; none of the 5"):
        cal.calibrate(x, y)
    x, y = clustered(5, 4)   # 20 impostor comparisons; target_fpir 0.1 needs 100
    with pytest.raises(CalibrationError, match="needs at least 100 impostor comparisons.*gives 20, 80 short"):
        cal.calibrate(x, y, target_fpir=0.1)
    with pytest.raises(CalibrationError, match="needs at least 100 impostor"):
        cal.calibrate(x, y, target_fpir=float(np.float32(0.1)))   # as the API delivers 0.1
    assert cal.targets(float(np.float32(0.01)), 0) == (0.01, 0.0)
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(InvalidTargetError):
            cal.calibrate(x, y, target_fnir=bad)


def test_precedence_request_then_explicit_then_calibrated_then_default():
    assert cal.effective_cutoff(2.0, configured=4.0, explicit=True, calibrated=2.6) == (2.0, "request")
    assert cal.effective_cutoff(0.0, configured=4.0, explicit=True, calibrated=2.6) == (4.0, "configured")
    assert cal.effective_cutoff(0.0, configured=3.5, explicit=False, calibrated=2.6) == (2.6, "calibrated")
    assert cal.effective_cutoff(0.0, configured=3.5, explicit=False, calibrated=None) == (3.5, "default")


def test_a_large_gallery_samples_its_query_faces_and_stays_close():
    x, y = clustered(400, 5, noise=0.11, seed=3)
    exact = cal.neighbours(x, y)
    assert not exact.sampled and cal.query_count(2000, 2000 * 2000) == 2000
    assert cal.query_count(20_000) == 20_000 and cal.query_count(100_000) == cal.query_count(1_000_000) == 4_000
    sample = cal.neighbours(x, y, query_pairs=2000 * 700, min_queries=100)     # 700 queries against all 2,000 faces
    assert sample.sampled and sample.faces == 700 and sample.total_faces == 2000 and sample.identities == 400
    for mine, full in ((sample.genuine, exact.genuine), (sample.impostor, exact.impostor)):
        assert np.abs(mine[:, None] - full[None, :]).min(1).max() < 1e-4   # each sampled face's exact figures
    a, b = cal.choose(sample), cal.choose(exact)
    assert abs(a.max_distance - b.max_distance) < 0.3 and abs(a.expected_fpir - b.expected_fpir) < 0.03
    assert a.sampled and (a.faces, a.total_faces) == (700, 2000)
