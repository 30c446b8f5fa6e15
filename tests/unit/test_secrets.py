"""Secrets stay out of what clients are told, of reprs and of command lines (issue 22)."""

from __future__ import annotations

import subprocess
import sys

from facesearch.gallery import GalleryConfig, IndexUnavailableError
from facesearch.gallery.milvus_index import redacted
from facesearch.service.errors import Unavailable, as_service_error


def test_clients_are_told_the_backend_without_its_uri_or_error():
    exc = IndexUnavailableError("Milvus at http://db:19530 is unavailable (could not search): token u:pw refused",
                                "the vector index (Milvus) is unavailable (could not search)")
    told = as_service_error(exc)
    assert isinstance(told, Unavailable)
    assert str(told) == "the vector index (Milvus) is unavailable (could not search)"


def test_uris_lose_their_credentials_in_messages():
    assert redacted("http://root:Milvus@db:19530/x") == "http://db:19530/x"
    assert redacted("http://db:19530") == "http://db:19530"
    assert redacted("/var/lib/milvus.db") == "/var/lib/milvus.db"


def test_config_reprs_hide_passwords_and_tokens():
    config = GalleryConfig(database_url="postgresql+psycopg://u:s3cret@db/g", milvus_token="u:t0ken")
    assert "s3cret" not in repr(config) and "t0ken" not in repr(config)


def test_migrate_takes_no_secret_on_its_command_line(tmp_path):
    cli = [sys.executable, "-m", "facesearch.indexer.cli", "--data-dir", str(tmp_path), "migrate"]
    token = subprocess.run(cli + ["--to-milvus-token", "u:t0ken"], capture_output=True, text=True, timeout=120)
    assert token.returncode != 0 and "cannot read u:t0ken" in token.stderr   # only ever a file's name
    url = subprocess.run(cli + ["--to-database-url", "postgresql+psycopg://u:s3cret@db/g"], capture_output=True,
                         text=True, timeout=120)
    assert url.returncode != 0 and "--to-database-url-file" in url.stderr and "PGPASSWORD" in url.stderr
