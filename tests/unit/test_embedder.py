"""Detection helpers of the embedder, without the model: crops and the primary face."""

import numpy as np

from facesearch.embedder import Box, Face, primary_face
from facesearch.embedder.detect import crop_with_margin


def test_crop_margin_is_clamped_at_the_borders():
    rgb = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3).astype(np.uint8)
    assert crop_with_margin(rgb, Box(10, 20, 40, 50), 0.1).shape == (60, 48, 3)  # 4 px / 5 px each side
    assert crop_with_margin(rgb, Box(0, 0, 40, 50), 0.5).shape == (75, 60, 3)    # clamped at top-left
    assert crop_with_margin(rgb, Box(60, 90, 20, 10), 0.5).shape == (15, 30, 3)  # clamped at bottom-right


def test_crops_are_copies_and_large_ones_are_downscaled():
    """A crop must not keep its whole photo alive, nor hold a face at full camera resolution."""
    from facesearch.embedder.detect import CROP_MAX_SIDE

    rgb = np.zeros((4000, 3000, 3), np.uint8)
    small = crop_with_margin(rgb, Box(100, 100, 200, 240), 0.1)
    assert small.shape == (288, 240, 3) and small.base is None
    big = crop_with_margin(rgb, Box(500, 500, 2000, 2400), 0.1)   # 2880 x 2400 before downscaling
    assert big.shape == (CROP_MAX_SIDE, 400, 3) and big.base is None and big.flags.c_contiguous


def test_primary_face_prefers_large_central_over_confident_corner():
    img = np.zeros((400, 400, 3), np.uint8)
    corner = Face(Box(0, 0, 60, 60), 0.999, img[:60, :60])
    central = Face(Box(150, 150, 100, 100), 0.91, img[150:250, 150:250])
    assert primary_face([corner, central], img.shape) is central
    assert primary_face([], img.shape) is None
