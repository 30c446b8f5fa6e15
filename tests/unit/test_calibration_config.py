"""ServerConfig says whether max_distance was given (then it beats a calibration); --recalibrate-every."""

from __future__ import annotations

import argparse

import pytest

from facesearch import settings
from facesearch.server.config import add_arguments, from_args


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_args(parser.parse_args(list(argv)))


def test_max_distance_is_explicit_only_when_given(monkeypatch):
    monkeypatch.delenv("FACESEARCH_MAX_DISTANCE", raising=False)
    monkeypatch.delenv("FACESEARCH_RECALIBRATE_EVERY", raising=False)
    config = parse()
    assert (config.max_distance, config.max_distance_explicit, config.recalibrate_every) == (3.5, False, 0)
    assert parse("--max-distance", "3.5").max_distance_explicit
    monkeypatch.setenv("FACESEARCH_MAX_DISTANCE", "2.9")
    monkeypatch.setenv("FACESEARCH_RECALIBRATE_EVERY", "100")
    config = parse()
    assert (config.max_distance, config.max_distance_explicit, config.recalibrate_every) == (2.9, True, 100)
    with pytest.raises(settings.SettingError):
        parse("--recalibrate-every", "-1")
