"""Detection settings are range-checked, with the variable and its range in the message (no model)."""

from __future__ import annotations

import sys

import numpy as np

import pytest

from facesearch.embedder import EmbedderConfig, FaceDetector
from facesearch.settings import SettingError


def test_defaults(monkeypatch):
    for name in ("FACESEARCH_DETECT_SCALE_FACTOR", "FACESEARCH_MIN_FACE_SIZE", "FACESEARCH_DETECT_MAX_SIDE"):
        monkeypatch.delenv(name, raising=False)
    config = EmbedderConfig.from_env()
    assert (config.detect_scale_factor, config.min_face_size, config.detect_max_side) == (0.709, 20, 1600)
    assert EmbedderConfig().detect_scale_factor == 0.709


@pytest.mark.parametrize("name, value, message", [
    ("DETECT_SCALE_FACTOR", "0.95", "less than or equal to 0.9"),
    ("DETECT_SCALE_FACTOR", "0.3", "greater than or equal to 0.5"),
    ("DETECT_SCALE_FACTOR", "fast", "a valid number"),
    ("MIN_FACE_SIZE", "2", "greater than or equal to 4"),
    ("MIN_FACE_SIZE", "5000", "less than or equal to 4096"),
    ("MIN_FACE_SIZE", "20px", "a valid integer"),
    ("DETECT_MAX_SIDE", "32", "greater than or equal to 64"),
])
def test_out_of_range_settings_are_refused(monkeypatch, name, value, message):
    monkeypatch.setenv("FACESEARCH_" + name, value)
    with pytest.raises(SettingError) as err:
        EmbedderConfig.from_env()
    assert str(err.value).startswith(f"FACESEARCH_{name}={value!r}: ") and message in str(err.value)


@pytest.mark.parametrize("value", ["0.5", "0.709", "0.9"])
def test_scale_factor_bounds_are_allowed(monkeypatch, value):
    monkeypatch.setenv("FACESEARCH_DETECT_SCALE_FACTOR", value)
    assert EmbedderConfig.from_env().detect_scale_factor == float(value)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale_factor": 1.0}, "scale_factor=1.0 must be within [0.5, 0.9]"),
    ({"min_face_size": 3}, "min_face_size=3 must be within [4, 4096]"),
    ({"max_side": 10}, "max_side=10 must be at least 64"),
])
def test_detector_refuses_out_of_range_arguments_before_loading_anything(kwargs, message):
    loaded = "tensorflow" in sys.modules
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        FaceDetector(**kwargs)
    assert ("tensorflow" in sys.modules) == loaded


def test_pnet_canvas_packing_keeps_levels_apart_at_even_offsets():
    """pack_levels (embedder/mtcnn_batched.py): every level placed once, inside its canvas, on even
    offsets (PNet pools with stride 2), overlapping none; canvases split near the pixel budget."""
    from facesearch.embedder.mtcnn_batched import pack_levels

    rng = np.random.default_rng(0)
    shapes = [tuple(int(v) for v in rng.integers(12, 400, size=2)) for _ in range(120)] + [(13, 13), (700, 25)]
    for budget in (8_000_000, 400_000):
        canvases = pack_levels(shapes, budget=budget)
        assert sorted(k for c in canvases for k, _, _ in c.places) == list(range(len(shapes)))
        assert len(canvases) == 1 if budget == 8_000_000 else len(canvases) > 3
        for c in canvases:
            assert c.height % 2 == 0 and c.width % 2 == 0
            assert c.height * c.width <= max(budget, 700 * 400) * 1.25
            used = np.zeros((c.height, c.width), bool)
            for k, y, x in c.places:
                h, w = shapes[k]
                assert y % 2 == 0 and x % 2 == 0 and y + h <= c.height and x + w <= c.width
                assert not used[y:y + h, x:x + w].any()
                used[y:y + h, x:x + w] = True
    assert pack_levels([]) == []


def test_detector_setting_names_one_of_the_registry(monkeypatch):
    from facesearch.embedder.detectors import DETECTORS, create_detector

    monkeypatch.delenv("FACESEARCH_DETECTOR", raising=False)
    assert EmbedderConfig.from_env().detector == "mtcnn" and DETECTORS == ("mtcnn", "yunet")
    monkeypatch.setenv("FACESEARCH_DETECTOR", "yunet")
    config = EmbedderConfig.from_env()
    assert (config.detector, config.yunet_min_score, config.yunet_max_side) == ("yunet", 0.6, 640)
    monkeypatch.setenv("FACESEARCH_DETECTOR", "retinaface")
    with pytest.raises(SettingError, match="FACESEARCH_DETECTOR='retinaface'"):
        EmbedderConfig.from_env()
    with pytest.raises(ValueError, match="unknown detector 'hog'"):
        create_detector(config, name="hog")


@pytest.mark.parametrize("kwargs, message", [
    ({"min_score": 1.5}, "min_score=1.5 must be within [0.0, 1.0]"),
    ({"max_side": 10}, "max_side=10 must be at least 64"),
    ({"threads": 0}, "threads=0 must be at least 1"),
])
def test_yunet_refuses_out_of_range_arguments(kwargs, message):
    from facesearch.embedder.yunet import YuNetDetector

    with pytest.raises(ValueError) as err:
        YuNetDetector(b"", **kwargs)
    assert message in str(err.value)


def test_indexer_server_and_trainer_take_a_detector_flag(monkeypatch):
    from facesearch.indexer.cli import main as indexer_main
    import argparse

    from facesearch.server.config import add_arguments
    from facesearch.trainer.cli import _common, build_parser

    monkeypatch.delenv("FACESEARCH_DETECTOR", raising=False)
    args = build_parser().parse_args(["evaluate", "--data", "x", "--detector", "yunet"])
    assert _common(args)["detector"] == "yunet"
    assert _common(build_parser().parse_args(["evaluate", "--data", "x"]))["detector"] == "mtcnn"
    with pytest.raises(SystemExit):
        indexer_main(["add", "folder", "--detector", "hog"])   # argparse refuses an unknown choice
    server = argparse.ArgumentParser()
    add_arguments(server)
    assert EmbedderConfig.from_args(server.parse_args(["--detector", "yunet"])).detector == "yunet"
