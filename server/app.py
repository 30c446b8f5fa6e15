"""The server process: gRPC and the REST/JSON API over one FaceSearchService (service/assembly.py).

The gRPC adapter is this package (servicer, auth, errors); the REST adapter is facesearch.rest,
which this module only starts beside it. Both listen at once, report NOT_SERVING / 503 until the
model and gallery are loaded, and stop together on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facesearch.embedder import EmbedderConfig, EmbedderError
from facesearch.gallery import GalleryConfig, GalleryError
from facesearch.rest import HttpOptions, HttpServer, create_app
from facesearch.service import Assembled, Limits, Retention, Tuning, assemble
from facesearch.v1 import facesearch_pb2 as pb
from facesearch.v1 import facesearch_pb2_grpc as pb_grpc

from .auth import AuthInterceptor
from .config import ServerConfig, is_loopback
from .metrics import Metrics
from .servicer import FaceSearchServicer

log = logging.getLogger("facesearch.server")
SERVICE = pb.DESCRIPTOR.services_by_name["FaceSearch"].full_name


def warmup_sizes(config: ServerConfig) -> list[int]:
    """Batch sizes run once before SERVING: the model is traced by the first (about 3 s, once),
    and the largest sets up the kernels a full batch uses."""
    limit = min(config.warmup_batch, config.max_batch)
    return sorted({1, limit}) if limit > 0 else []


def tuning(config: ServerConfig) -> Tuning:
    return Tuning(tf_threads=config.tf_threads, embed_lanes=config.embed_lanes, warmup_sizes=tuple(warmup_sizes(config)),
                  detect_workers=config.detect_workers, max_batch=config.max_batch, detect_batch=config.detect_batch,
                  max_wait_s=config.max_wait_ms / 1000, snapshot_every=config.snapshot_every,
                  max_queued=config.max_queued, follow_s=config.follow_ms / 1000)


def limits(config: ServerConfig) -> Limits:
    return Limits(max_distance=config.max_distance, max_distance_explicit=config.max_distance_explicit,
                  max_top_k=config.max_top_k, max_enroll_images=config.max_enroll_images,
                  max_request_pixels=config.max_request_pixels,
                  recalibrate_every=config.recalibrate_every)


def retention(config: ServerConfig) -> Retention:
    return Retention(keep_days=config.keep_unknown_days, max_faces=config.keep_unknown_max)


def credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if not config.tls_cert:
        return None
    key, chain = Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes()
    return grpc.ssl_server_credentials([(key, chain)])


class Grpc:
    """The gRPC server with health and reflection; NOT_SERVING until set_serving(True)."""

    def __init__(self, config: ServerConfig, metrics: Metrics):
        self.servicer = FaceSearchServicer(metrics)
        self.server = grpc.aio.server(
            interceptors=[AuthInterceptor(config.auth_token)] if config.auth_token else [],
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,   # beyond it, RESOURCE_EXHAUSTED at once
            options=[("grpc.max_receive_message_length", config.max_message_bytes),
                     ("grpc.max_send_message_length", config.max_message_bytes)])
        pb_grpc.add_FaceSearchServicer_to_server(self.servicer, self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection([SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            await self.health.set(name, status)

    async def listen(self, config: ServerConfig) -> str:
        """Bind (raises RuntimeError when it cannot) and start; returns host:port."""
        await self.set_serving(False)
        creds = credentials(config)
        address = config.grpc_address
        port = self.server.add_secure_port(address, creds) if creds else self.server.add_insecure_port(address)
        await self.server.start()
        return f"{address.rsplit(':', 1)[0]}:{port}"


def warn_about_security(config: ServerConfig) -> None:
    if config.plaintext_token:
        log.warning("THE AUTH TOKEN TRAVELS IN PLAINTEXT: %s is reachable beyond loopback without TLS; anyone on "
                    "the path can read the token. Set FACESEARCH_TLS_CERT and FACESEARCH_TLS_KEY, or put a TLS "
                    "proxy in front.", " and ".join(a for a in config.addresses if not is_loopback(a)))
    for address in config.addresses:
        if config.insecure and not config.auth_token and not is_loopback(address):
            log.warning("NO AUTHENTICATION: %s serves anyone who can reach it (FACESEARCH_INSECURE)", address)


async def serve(config: ServerConfig, embedder_config: EmbedderConfig, gallery_config: GalleryConfig,
                stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop`); returns the process exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    metrics = Metrics()
    rpc = Grpc(config, metrics) if config.grpc_address else None
    rest = create_app(HttpOptions(auth_token=config.auth_token, max_body_bytes=config.max_message_bytes,
                                  max_concurrent=config.max_concurrent_rpcs,
                                  max_files=config.max_enroll_images + 1,
                                  metrics=metrics.registry if config.metrics_port else None,
                                  observe=metrics.observe)) if config.http_address else None
    http = HttpServer(rest, config.http_address, tls_cert=config.tls_cert, tls_key=config.tls_key,
                      grace_s=config.grace_s) if rest is not None else None

    async def set_serving(serving: bool) -> None:
        if rpc is not None:
            await rpc.set_serving(serving)
        if rest is not None:
            rest.state.serving = serving

    built: Assembled | None = None
    try:
        try:
            if rpc is not None:
                log.info("listening", extra={"address": await rpc.listen(config), "tls": bool(config.tls_cert),
                                             "auth": bool(config.auth_token)})
            if http is not None:
                log.info("http listening", extra={"address": await http.start(), "tls": bool(config.tls_cert),
                                                  "auth": bool(config.auth_token)})
        except (RuntimeError, OSError) as exc:
            log.error("cannot listen: %s", exc)
            return 2
        warn_about_security(config)
        if config.metrics_port:
            metrics.serve(config.metrics_address, config.metrics_port)
            log.info("metrics", extra={"address": f"{config.metrics_address}:{config.metrics_port}"})

        dead: list[str] = []   # a stopped batcher; a healthy gallery does not bring SERVING back

        def set_health(serving: bool) -> None:  # from any thread
            asyncio.run_coroutine_threadsafe(set_serving(serving), loop)

        def stopped(reason: str) -> None:  # a batch worker died: say so, rather than hang while SERVING
            dead.append(reason)
            log.critical("not serving: %s", reason)
            set_health(False)

        def gallery_health(reason: str | None) -> None:  # from the writer thread: the index may miss changes
            if reason is not None:
                log.critical("not serving: %s", reason)
            set_health(reason is None and not dead)

        built = await assemble(embedder_config, gallery_config, tuning(config), limits(config),
                               retention=retention(config), on_batch=metrics.batch, on_stopped=stopped)
        built.gallery.on_health = gallery_health
        for transport in (rpc.servicer if rpc else None, rest.state if rest else None):
            if transport is not None:
                transport.service = built.service
        runtime, gallery = built.runtime, built.gallery
        metrics.watch(lambda: runtime.depths["embed"], lambda: runtime.depths["search"], gallery.indexed_count)
        await set_serving(True)
        log.info("serving", extra={"model_id": built.embedder.model_id, "detector": built.embedder.config.detector,
                                   "faces": gallery.indexed_count(),
                                   "index": gallery.index_description, "data_dir": str(gallery_config.data_dir)})
        await stop.wait()
        log.info("stopping: draining in-flight requests", extra={"grace_s": config.grace_s})
        return 0
    except (EmbedderError, GalleryError, OSError) as exc:  # a clear message is enough
        log.error("cannot start: %s", exc)
        return 2
    except Exception:
        log.exception("cannot start")
        return 2
    finally:
        await set_serving(False)
        await asyncio.gather(*([rpc.server.stop(config.grace_s)] if rpc else []), *([http.stop()] if http else []))
        if built is not None:
            await built.close()   # snapshots the index
            log.info("stopped: index snapshotted", extra={"faces": built.gallery.indexed_count()})
