"""The settings layer (facesearch.settings) and the components' classes, without the model:
variables, flags, precedence, error messages and the explicit max_distance."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import pytest

from facesearch.embedder import EmbedderConfig
from facesearch.gallery import GalleryConfig, IndexConfig
from facesearch.server.config import SETTINGS, ServerConfig, add_arguments, from_args
from facesearch.settings import PREFIX, SettingError, add_flags, env_var, flag, table


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No FACESEARCH_* variable from the shell leaks into these tests."""
    import os

    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)


def server_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def setting_error(call) -> str:
    with pytest.raises(SettingError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "pydantic" not in message and "validation error" not in message, message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    return message


# -- variables ------------------------------------------------------------------------------------
def test_variables_are_parsed_into_typed_fields(monkeypatch, tmp_path):
    monkeypatch.setenv("FACESEARCH_INDEX", "hnsw")
    monkeypatch.setenv("FACESEARCH_HNSW_M", "16")
    monkeypatch.setenv("FACESEARCH_FAISS_GPU", "0")
    monkeypatch.setenv("FACESEARCH_DATA_DIR", str(tmp_path / "g"))
    monkeypatch.setenv("FACESEARCH_MIN_FACE_SCORE", "0.95")
    monkeypatch.setenv("FACESEARCH_MAX_WAIT_MS", "2.5")
    monkeypatch.setenv("FACESEARCH_LOG_FORMAT", "text")
    gallery, embedder, server = GalleryConfig.from_env(), EmbedderConfig.from_env(), ServerConfig.from_env()
    assert gallery.index.kind == "hnsw" and gallery.index.hnsw_m == 16 and gallery.index.use_gpu is False
    assert gallery.data_dir == tmp_path / "g" and isinstance(gallery.data_dir, Path)
    assert gallery.url == f"sqlite:///{(tmp_path / 'g').resolve() / 'gallery.db'}"
    assert embedder.min_face_score == 0.95 and embedder.model == "facenet-128"
    assert server.max_wait_ms == 2.5 and server.log_format == "text"


def test_defaults_without_variables():
    server, gallery = ServerConfig.from_env(), GalleryConfig.from_env()
    assert server == ServerConfig()
    assert server.address == "127.0.0.1:50051" and server.max_distance == 3.5 and server.max_batch == 64
    assert gallery.data_dir == Path("var") and gallery.database_url == "" and gallery.index == IndexConfig()
    assert gallery.index.kind == "flat" and gallery.index.use_gpu is True


def test_paths_expand_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FACESEARCH_CACHE_DIR", "~/weights")
    assert EmbedderConfig.from_env().cache_dir == tmp_path / "weights"


def test_an_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("FACESEARCH_MAX_BATCH", "")
    monkeypatch.setenv("FACESEARCH_MAX_DISTANCE", "")
    server = ServerConfig.from_env()
    assert server.max_batch == 64 and not server.max_distance_explicit


def test_plain_construction_never_reads_the_environment(monkeypatch, tmp_path):
    """GalleryConfig(data_dir=...) in a test must not pick up a database URL from the shell."""
    monkeypatch.setenv("FACESEARCH_DATABASE_URL", "postgresql://prod/gallery")
    monkeypatch.setenv("FACESEARCH_INDEX", "ivf")
    config = GalleryConfig(data_dir=tmp_path)
    assert config.database_url == "" and config.index.kind == "flat"
    assert GalleryConfig.from_env().database_url == "postgresql://prod/gallery"


def test_fields_that_are_not_settings_have_no_variable_or_flag(monkeypatch):
    monkeypatch.setenv("FACESEARCH_MAX_TOP_K", "5")
    monkeypatch.setenv("FACESEARCH_HNSW_COMPACT_RATIO", "0.9")
    assert ServerConfig.from_env().max_top_k == 1000
    assert GalleryConfig.from_env().index.hnsw_compact_ratio == 0.3
    assert "max_top_k" not in ServerConfig.setting_names() and "index" not in GalleryConfig.setting_names()
    with pytest.raises(SystemExit):
        server_args("--max-top-k", "5")


def test_overrides_win_and_unknown_names_are_refused(monkeypatch):
    monkeypatch.setenv("FACESEARCH_MODEL", "keras-facenet:20170511-185253")
    assert EmbedderConfig.from_env(model="facenet-128").model == "facenet-128"
    assert EmbedderConfig.from_env().model == "keras-facenet:20170511-185253"
    with pytest.raises(SettingError, match="no_such_setting"):
        EmbedderConfig.from_env(no_such_setting=1)


def test_configs_are_immutable_and_pickle():
    """The embedder's worker processes get the config pickled."""
    config = EmbedderConfig.from_env(max_batch=8)
    with pytest.raises(Exception):
        config.max_batch = 16
    assert pickle.loads(pickle.dumps(config)) == config


# -- flags and precedence -------------------------------------------------------------------------
def test_flag_beats_variable_beats_default(monkeypatch):
    assert from_args(server_args()).grace_s == 10.0
    monkeypatch.setenv("FACESEARCH_GRACE_S", "3")
    assert from_args(server_args()).grace_s == 3.0
    assert from_args(server_args("--grace-s", "1.5")).grace_s == 1.5


def test_one_flag_sets_every_class_that_reads_a_setting(monkeypatch):
    """FACESEARCH_MAX_BATCH has one meaning: the server's batcher and the embedder read one field."""
    monkeypatch.setenv("FACESEARCH_MAX_BATCH", "32")
    assert ServerConfig.from_env().max_batch == EmbedderConfig.from_env().max_batch == 32
    args = server_args("--max-batch", "8")
    assert from_args(args).max_batch == EmbedderConfig.from_args(args).max_batch == 8


def test_nested_index_settings_come_from_flags_and_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("FACESEARCH_IVF_NPROBE", "4")
    args = server_args("--index", "ivf", "--data-dir", str(tmp_path), "--faiss-gpu", "false")
    gallery = GalleryConfig.from_args(args)
    assert gallery.index.kind == "ivf" and gallery.index.ivf_nprobe == 4 and not gallery.index.use_gpu
    assert gallery.data_dir == tmp_path


def test_every_setting_has_a_flag_a_variable_and_help():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = parser.format_help()
    for cls in SETTINGS:
        for name in cls.setting_names():
            field = cls.model_fields[name]
            assert field.description, f"{cls.__name__}.{name} has no description"
            assert flag(cls, name) in text and env_var(cls, name) in text
    assert flag(IndexConfig, "kind") == "--index" and env_var(IndexConfig, "kind") == "FACESEARCH_INDEX"
    assert env_var(IndexConfig, "use_gpu") == "FACESEARCH_FAISS_GPU"


def test_choices_are_argparse_choices():
    with pytest.raises(SystemExit):
        server_args("--index", "annoy")
    with pytest.raises(SystemExit):
        server_args("--log-format", "xml")


def test_a_tool_keeps_its_flag_name_for_a_setting(monkeypatch):
    """The trainer's --cutoff is FACESEARCH_MAX_DISTANCE's field under its older name."""
    from facesearch.trainer.cli import _cutoff, _model, build_parser

    parser = build_parser()
    argv = ["calibrate", "--data", "photos"]
    assert _cutoff(parser.parse_args(argv)) == 3.5 and _model(parser.parse_args(argv)) == "facenet-128"
    monkeypatch.setenv("FACESEARCH_MAX_DISTANCE", "2.25")
    monkeypatch.setenv("FACESEARCH_MODEL", "models/x")
    assert _cutoff(parser.parse_args(argv)) == 2.25 and _model(parser.parse_args(argv)) == "models/x"
    assert _cutoff(parser.parse_args([*argv, "--cutoff", "1"])) == 1.0
    assert "--cutoff=" in setting_error(lambda: _cutoff(parser.parse_args([*argv, "--cutoff", "20"])))


def test_add_flags_only_and_skip():
    parser = argparse.ArgumentParser()
    added = add_flags(parser, GalleryConfig, only=["data_dir"])
    assert added == {"FACESEARCH_DATA_DIR"}
    assert add_flags(parser, EmbedderConfig, ServerConfig, skip={"FACESEARCH_MODEL"}) >= {"FACESEARCH_ADDRESS"}
    args = parser.parse_args(["--data-dir", "/srv/g", "--max-batch", "4"])
    assert GalleryConfig.from_args(args).data_dir == Path("/srv/g")
    assert EmbedderConfig.from_args(args).max_batch == ServerConfig.from_args(args).max_batch == 4
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "x"])


# -- errors ---------------------------------------------------------------------------------------
def test_a_bad_variable_is_named_in_one_line(monkeypatch):
    monkeypatch.setenv("FACESEARCH_IVF_NPROBE", "many")
    message = setting_error(GalleryConfig.from_env)
    assert message.startswith("FACESEARCH_IVF_NPROBE='many': ") and "integer" in message


def test_a_bad_flag_is_named_not_its_variable(monkeypatch):
    monkeypatch.setenv("FACESEARCH_MAX_DISTANCE", "2")
    message = setting_error(lambda: from_args(server_args("--max-distance", "0")))
    assert message.startswith("--max-distance='0': ") and "greater than 0" in message


def test_ranges(monkeypatch):
    for var, value, where in [("FACESEARCH_MAX_DISTANCE", "12.5", "less than or equal to 12"),
                              ("FACESEARCH_MAX_BATCH", "0", "greater than or equal to 1"),
                              ("FACESEARCH_METRICS_PORT", "70000", "less than or equal to 65535"),
                              ("FACESEARCH_DETECT_WORKERS", "0", "greater than or equal to 1")]:
        monkeypatch.setenv(var, value)
        message = setting_error(ServerConfig.from_env)
        assert message.startswith(f"{var}='{value}': ") and where in message, message
        monkeypatch.delenv(var)
    monkeypatch.setenv("FACESEARCH_MAX_DISTANCE", "12")
    assert ServerConfig.from_env().max_distance == 12.0
    monkeypatch.setenv("FACESEARCH_MIN_FACE_SCORE", "1.5")
    assert setting_error(EmbedderConfig.from_env).startswith("FACESEARCH_MIN_FACE_SCORE='1.5': ")


def test_choices_name_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("FACESEARCH_INDEX", "annoy")
    message = setting_error(GalleryConfig.from_env)
    assert message.startswith("FACESEARCH_INDEX='annoy': ") and "'flat', 'ivf' or 'hnsw'" in message
    monkeypatch.delenv("FACESEARCH_INDEX")
    monkeypatch.setenv("FACESEARCH_LOG_FORMAT", "xml")
    assert "'json' or 'text'" in setting_error(ServerConfig.from_env)


def test_tls_needs_both_files(monkeypatch):
    monkeypatch.setenv("FACESEARCH_TLS_CERT", "cert.pem")
    message = setting_error(ServerConfig.from_env)
    assert message == ("TLS needs both FACESEARCH_TLS_CERT (--tls-cert) and FACESEARCH_TLS_KEY (--tls-key)")
    assert from_args(server_args("--tls-key", "key.pem")).tls_key == "key.pem"


def test_several_errors_in_one_line(monkeypatch):
    monkeypatch.setenv("FACESEARCH_MAX_BATCH", "x")
    monkeypatch.setenv("FACESEARCH_GRACE_S", "-1")
    message = setting_error(ServerConfig.from_env)
    assert "FACESEARCH_MAX_BATCH='x'" in message and "; FACESEARCH_GRACE_S='-1'" in message


# -- max_distance ---------------------------------------------------------------------------------
def test_max_distance_explicit(monkeypatch):
    assert not ServerConfig().max_distance_explicit and not ServerConfig.from_env().max_distance_explicit
    assert not from_args(server_args()).max_distance_explicit
    assert ServerConfig(max_distance=2.0).max_distance_explicit
    monkeypatch.setenv("FACESEARCH_MAX_DISTANCE", "3.5")  # the default's value, set on purpose
    config = ServerConfig.from_env()
    assert config.max_distance == 3.5 and config.max_distance_explicit
    monkeypatch.delenv("FACESEARCH_MAX_DISTANCE")
    config = from_args(server_args("--max-distance", "1.25"))
    assert config.max_distance == 1.25 and config.max_distance_explicit


# -- the README table -----------------------------------------------------------------------------
def test_table_has_one_row_per_variable():
    text = table(*SETTINGS)
    rows = [line for line in text.splitlines() if line.startswith("| `FACESEARCH_")]
    variables = {env_var(cls, name) for cls in SETTINGS for name in cls.setting_names()}
    assert len(rows) == len(variables) and text.count("`FACESEARCH_MAX_BATCH`") == 1
    assert "| `FACESEARCH_INDEX` | `--index` | `flat` |" in text
    assert "| `FACESEARCH_MAX_DISTANCE` | `--max-distance` | `3.5` |" in text
