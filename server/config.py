"""Server settings, and the server's flags: every setting the server reads (its own, the
embedder's and the gallery's) is a flag and a FACESEARCH_* variable (facesearch.settings)."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Literal

from pydantic import model_validator

from facesearch import settings
from facesearch.embedder import EmbedderConfig
from facesearch.embedder.config import max_batch_setting
from facesearch.embedder.images import DEFAULT_MAX_REQUEST_PIXELS
from facesearch.embedder.distances import max_distance_setting
from facesearch.gallery import GalleryConfig, IndexConfig
from facesearch.settings import Settings, fixed, setting

MiB = 1 << 20


class ServerConfig(Settings):
    """The gRPC and REST/JSON services: listening, security, batching, limits and lifecycle."""

    address: str = setting("127.0.0.1:50051", "host:port to serve gRPC on; loopback by default")
    http_address: str = setting("127.0.0.1:8080", "host:port to serve the REST/JSON API, its OpenAPI docs and the "
                                                  "web console on (empty: off); the same token, TLS and loopback "
                                                  "rules as gRPC", empty_is_a_value=True)
    no_grpc: bool = setting(False, "serve only the REST/JSON API on --http-address, no gRPC")
    max_distance: float = max_distance_setting()
    auth_token: str = setting("", "require 'authorization: Bearer TOKEN' on every RPC and HTTP request but health "
                                  "(and the console's static files)",
                              shown="(empty: no authentication)", repr=False)
    tls_cert: str = setting("", "PEM certificate chain; with --tls-key, serve TLS")
    tls_key: str = setting("", "PEM private key; with --tls-cert, serve TLS")
    metrics_port: int = setting(0, "serve Prometheus metrics on this port (0: off)", ge=0, le=65535)
    metrics_address: str = setting("127.0.0.1", "address for the metrics endpoint")
    max_message_bytes: int = setting(8 * MiB, "largest request or response, in bytes (an HTTP body too)", ge=1024)
    max_batch: int = max_batch_setting()
    max_wait_ms: float = setting(5.0, "longest a face waits for others to join its batch, in ms", ge=0)
    warmup_batch: int = setting(64, "before SERVING, trace the model and run a batch of 1 and of this size "
                                    "(0: none)", ge=0)
    insecure: bool = setting(False, "allow listening beyond loopback without --auth-token (a trusted network only)")
    max_concurrent_rpcs: int = setting(256, "most RPCs in flight at once, and as many HTTP requests; more answer "
                                            "RESOURCE_EXHAUSTED (HTTP 429)", ge=1)
    max_queued: int = setting(4096, "most faces or searches waiting for a micro-batch; more answer "
                              "RESOURCE_EXHAUSTED", ge=1)
    detect_workers: int = setting(2, "threads decoding images and cutting crops (MTCNN itself runs batched)", ge=1)
    detect_batch: int = setting(16, "most photos of concurrent requests detected in one MTCNN pass", ge=1)
    tf_threads: int = setting(0, "TensorFlow threads per op (0: the cores shared among several --embed-lanes, "
                                 "else TensorFlow's own choice)", ge=0)
    embed_lanes: int = setting(2, "embedding batches run at once, each on TensorFlow threads of its own "
                                  "(docs/performance.md#embedding-lanes)", ge=1)
    max_enroll_images: int = setting(256, "most images in one Enroll", ge=1)
    max_request_pixels: int = setting(DEFAULT_MAX_REQUEST_PIXELS, "most pixels of all the images in one request together, read "
                                                   "from their headers before any is decoded", ge=1)
    max_top_k: int = fixed(1000)
    snapshot_every: int = setting(10_000, "index changes between snapshots", ge=1)
    follow_ms: float = setting(250.0, "how often to apply what other replicas sharing the database committed, in "
                                      "ms: a write on one is searchable on the others within about this (0: never)",
                               ge=0)
    grace_s: float = setting(10.0, "seconds in-flight requests get on SIGTERM", ge=0)
    log_format: Literal["json", "text"] = setting("json", "log lines on stderr: json or text")
    keep_unknown_days: int = setting(0, "keep each face Identify answers as unknown (embedding, crop, time, the "
                                            "request's source) this many days, clustered in the background for "
                                            "naming; personal data, README \"Unknown visitors\" (0: keep nothing)",
                                       ge=0)
    keep_unknown_max: int = setting(100_000, "most unknown faces kept; the oldest go first", ge=1)
    recalibrate_every: int = setting(0, "after this many faces enrolled or deleted, recalibrate in the background "
                                        "with the last Calibrate's targets (0: never)", ge=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> "ServerConfig":
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError(f"TLS needs both {settings.names(ServerConfig, 'tls_cert')} and "
                             f"{settings.names(ServerConfig, 'tls_key')}")
        return self

    @model_validator(mode="after")
    def _something_to_serve(self) -> "ServerConfig":
        if self.no_grpc and not self.http_address:
            raise ValueError(f"{settings.flag(ServerConfig, 'no_grpc')} needs "
                             f"{settings.names(ServerConfig, 'http_address')}: nothing would be served")
        return self

    @model_validator(mode="after")
    def _no_open_door(self) -> "ServerConfig":
        for address in self.addresses:
            if not self.auth_token and not self.insecure and not is_loopback(address):
                raise ValueError(
                    f"refusing to serve {address} beyond loopback without a token: set "
                    f"{settings.names(ServerConfig, 'auth_token')} (e.g. `openssl rand -hex 32`), or "
                    f"{settings.env_var(ServerConfig, 'insecure')}=1 ({settings.flag(ServerConfig, 'insecure')}) "
                    "on a network you trust")
        return self

    @property
    def grpc_address(self) -> str:
        """Where gRPC listens; empty with --no-grpc."""
        return "" if self.no_grpc else self.address

    @property
    def addresses(self) -> list[str]:
        """Every address this server listens on (gRPC, HTTP)."""
        return [a for a in (self.grpc_address, self.http_address) if a]

    @property
    def plaintext_token(self) -> bool:
        """A token that would travel without TLS, readable by anyone on the path."""
        return bool(self.auth_token) and not self.tls_cert and not all(is_loopback(a) for a in self.addresses)

    @property
    def max_distance_explicit(self) -> bool:
        """Whether max_distance was set (variable, flag or override) rather than left at its default:
        an explicit cutoff wins over any other, such as one calibrated for the model."""
        return "max_distance" in self.model_fields_set


def is_loopback(address: str) -> bool:
    """Whether host:port listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a name, or 0.0.0.0 / [::]: reachable from elsewhere


# Every setting the server reads, in --help's and the README's order.
SETTINGS = (ServerConfig, EmbedderConfig, GalleryConfig, IndexConfig)
GROUPS = (("server", (ServerConfig,)), ("model and images", (EmbedderConfig,)),
          ("gallery", (GalleryConfig, IndexConfig)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of SETTINGS, grouped by component."""
    added: set[str] = set()
    for title, classes in GROUPS:
        added |= settings.add_flags(parser.add_argument_group(title), *classes, skip=added)


def from_args(args: argparse.Namespace | None = None) -> ServerConfig:
    """Flags override FACESEARCH_* variables, which override the defaults."""
    return ServerConfig.from_args(args)


if __name__ == "__main__":  # the README's Configuration table
    print(settings.table(*SETTINGS), end="")
