"""Building, starting and stopping the gRPC server."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facesearch.embedder import Embedder, EmbedderConfig, EmbedderError
from facesearch.gallery import Gallery, GalleryConfig, GalleryError
from facesearch.service import FaceSearchService, Limits, Runtime
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


def credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if not config.tls_cert:
        return None
    key, chain = Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes()
    return grpc.ssl_server_credentials([(key, chain)])


async def serve(config: ServerConfig, embedder_config: EmbedderConfig, gallery_config: GalleryConfig,
                stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop`); returns the process exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    metrics = Metrics()
    servicer = FaceSearchServicer(metrics)
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(config.auth_token)] if config.auth_token else [],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,   # beyond it, RESOURCE_EXHAUSTED at once
        options=[("grpc.max_receive_message_length", config.max_message_bytes),
                 ("grpc.max_send_message_length", config.max_message_bytes)])
    pb_grpc.add_FaceSearchServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    for name in ("", SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    creds = credentials(config)
    try:
        port = server.add_secure_port(config.address, creds) if creds else server.add_insecure_port(config.address)
    except RuntimeError as exc:
        log.error("cannot listen on %s: %s", config.address, exc)
        return 2
    host = config.address.rsplit(":", 1)[0]
    if config.plaintext_token:
        log.warning("THE AUTH TOKEN TRAVELS IN PLAINTEXT: %s is reachable beyond loopback without TLS; anyone on "
                    "the path can read the token. Set FACESEARCH_TLS_CERT and FACESEARCH_TLS_KEY, or put a TLS "
                    "proxy in front.", config.address)
    if config.insecure and not config.auth_token and not is_loopback(config.address):
        log.warning("NO AUTHENTICATION: %s serves anyone who can reach it (FACESEARCH_INSECURE)", config.address)
    await server.start()
    log.info("listening", extra={"address": f"{host}:{port}", "tls": bool(creds), "auth": bool(config.auth_token)})
    if config.metrics_port:
        metrics.serve(config.metrics_address, config.metrics_port)
        log.info("metrics", extra={"address": f"{config.metrics_address}:{config.metrics_port}"})

    gallery = runtime = None
    try:
        dead: list[str] = []   # a stopped batcher; a healthy gallery does not bring SERVING back

        def set_health(status) -> None:  # from any thread
            for name in ("", SERVICE):
                asyncio.run_coroutine_threadsafe(health_servicer.set(name, status), loop)

        def stopped(reason: str) -> None:  # a batch worker died: say so, rather than hang while SERVING
            dead.append(reason)
            log.critical("not serving: %s", reason)
            set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

        def gallery_health(reason: str | None) -> None:  # from the writer thread: the index may miss changes
            if reason is not None:
                log.critical("not serving: %s", reason)
            set_health(health_pb2.HealthCheckResponse.SERVING if reason is None and not dead
                       else health_pb2.HealthCheckResponse.NOT_SERVING)

        def load():
            if config.tf_threads:  # before TensorFlow starts: docs/performance.md#after-compiled-batched-detection
                import tensorflow as tf

                tf.config.threading.set_intra_op_parallelism_threads(config.tf_threads)
            embedder = Embedder.load(embedder_config)
            if config.warmup_batch:
                embedder.warmup(warmup_sizes(config))
            opened = Gallery.open(gallery_config, model_id=embedder.model_id, dimension=embedder.dimension)
            runtime = Runtime(embedder, opened, detect_workers=config.detect_workers, max_batch=config.max_batch,
                              detect_batch=config.detect_batch, max_wait_s=config.max_wait_ms / 1000,
                              snapshot_every=config.snapshot_every, max_queued=config.max_queued,
                              follow_s=config.follow_ms / 1000, on_batch=metrics.batch, on_stopped=stopped)
            runtime.faces.detector.networks.warm()  # trace MTCNN's functions before SERVING
            return embedder, opened, runtime

        embedder, gallery, runtime = await loop.run_in_executor(None, load)
        gallery.on_health = gallery_health
        runtime.start()
        limits = Limits(max_distance=config.max_distance, max_distance_explicit=config.max_distance_explicit,
                        max_top_k=config.max_top_k, max_enroll_images=config.max_enroll_images,
                        max_request_pixels=config.max_request_pixels,
                        recalibrate_every=config.recalibrate_every)
        servicer.attach(FaceSearchService(embedder, gallery, runtime, limits))
        metrics.watch(lambda: runtime.depths["embed"], lambda: runtime.depths["search"], gallery.indexed_count)
        for name in ("", SERVICE):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"model_id": embedder.model_id, "faces": gallery.indexed_count(),
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
        for name in ("", SERVICE):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(config.grace_s)
        if runtime is not None:
            await runtime.stop()
        if gallery is not None:
            gallery.close()   # snapshots the index
            log.info("stopped: index snapshotted", extra={"faces": gallery.indexed_count()})
