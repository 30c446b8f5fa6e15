"""Server settings: every option is a flag and a FACESEARCH_* variable (DESIGN.md §2)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from facesearch import settings
from facesearch.embedder.distances import DEFAULT_CUTOFF, MAX_DISTANCE

MiB = 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    address: str = "127.0.0.1:50051"        # FACESEARCH_ADDRESS
    max_distance: float = DEFAULT_CUTOFF    # FACESEARCH_MAX_DISTANCE
    auth_token: str = ""                    # FACESEARCH_AUTH_TOKEN (empty: no auth)
    tls_cert: str = ""                      # FACESEARCH_TLS_CERT
    tls_key: str = ""                       # FACESEARCH_TLS_KEY
    metrics_port: int = 0                   # FACESEARCH_METRICS_PORT (0: off)
    metrics_address: str = "127.0.0.1"      # FACESEARCH_METRICS_ADDRESS
    max_message_bytes: int = 8 * MiB        # FACESEARCH_MAX_MESSAGE_BYTES
    max_batch: int = 64                     # FACESEARCH_MAX_BATCH
    max_wait_ms: float = 5.0                # FACESEARCH_MAX_WAIT_MS
    warmup_batch: int = 64                  # FACESEARCH_WARMUP_BATCH: trace batch buckets up to this before SERVING
    detect_workers: int = 2                 # FACESEARCH_DETECT_WORKERS
    max_enroll_images: int = 256            # FACESEARCH_MAX_ENROLL_IMAGES
    max_top_k: int = 1000
    snapshot_every: int = 10_000            # FACESEARCH_SNAPSHOT_EVERY: changes between index snapshots
    grace_s: float = 10.0                   # FACESEARCH_GRACE_S: SIGTERM drain time
    log_format: str = "json"                # FACESEARCH_LOG_FORMAT: json or text
    recalibrate_every: int = 0              # FACESEARCH_RECALIBRATE_EVERY: faces changed before a background Calibrate
    max_distance_explicit: bool = False     # max_distance was given (flag or variable): it beats a calibration


OPTIONS = [
    # (field, flag, type, help)
    ("address", "--address", str, "host:port to listen on; loopback by default"),
    ("max_distance", "--max-distance", float, "default cutoff on the service scale (0 to 12)"),
    ("auth_token", "--auth-token", str, "require 'authorization: Bearer <token>' on every RPC but health"),
    ("tls_cert", "--tls-cert", str, "PEM certificate chain; with --tls-key, serve TLS"),
    ("tls_key", "--tls-key", str, "PEM private key"),
    ("metrics_port", "--metrics-port", int, "serve Prometheus metrics on this port (0: off)"),
    ("metrics_address", "--metrics-address", str, "address for the metrics endpoint"),
    ("max_message_bytes", "--max-message-bytes", int, "largest request or response"),
    ("max_batch", "--max-batch", int, "most faces embedded together"),
    ("max_wait_ms", "--max-wait-ms", float, "longest a face waits for others to join its batch"),
    ("warmup_batch", "--warmup-batch", int, "before SERVING, trace every batch bucket up to this size (0: none)"),
    ("detect_workers", "--detect-workers", int, "threads decoding images and running MTCNN"),
    ("max_enroll_images", "--max-enroll-images", int, "most images in one Enroll"),
    ("snapshot_every", "--snapshot-every", int, "index changes between snapshots"),
    ("grace_s", "--grace-s", float, "seconds in-flight requests get on SIGTERM"),
    ("log_format", "--log-format", str, "json or text"),
    ("recalibrate_every", "--recalibrate-every", int,
     "after this many faces enrolled or deleted, recalibrate in the background with the last targets (0: never)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ServerConfig()
    for name, flag, _type, text in OPTIONS:
        env = settings.env_name(name)
        shown = "(empty)" if getattr(defaults, name) == "" else getattr(defaults, name)
        parser.add_argument(flag, dest=name, default=None, help=f"{text} [{env}, default {shown}]")


def from_args(args: argparse.Namespace | None = None) -> ServerConfig:
    """Flags override FACESEARCH_* variables, which override the defaults."""
    defaults = ServerConfig()
    values = {}
    for name, _flag, type_, _text in OPTIONS:
        raw = getattr(args, name, None) if args is not None else None
        if raw is None:
            raw = os.environ.get(settings.env_name(name))
        if raw is None:
            continue
        try:
            values[name] = type_(raw)
        except ValueError:
            raise settings.SettingError(f"{settings.env_name(name)}/--{name.replace('_', '-')}={raw!r} "
                                        f"is not a valid {type_.__name__}") from None
    config = ServerConfig(**{**defaults.__dict__, **values, "max_distance_explicit": "max_distance" in values})
    if not 0 < config.max_distance <= MAX_DISTANCE:
        raise settings.SettingError(f"max distance {config.max_distance} must be in (0, {MAX_DISTANCE}]")
    if bool(config.tls_cert) != bool(config.tls_key):
        raise settings.SettingError("TLS needs both --tls-cert and --tls-key")
    if config.recalibrate_every < 0:
        raise settings.SettingError("recalibrate every must be at least 0")
    if config.log_format not in ("json", "text"):
        raise settings.SettingError("log format must be json or text")
    return config
