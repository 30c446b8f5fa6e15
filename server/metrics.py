"""Prometheus metrics, on their own port (prometheus-client)."""

from __future__ import annotations

from typing import Callable

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("facesearch_requests_total", "RPCs and HTTP requests by method and status code",
                                ["method", "code"], registry=r)
        self.latency = Histogram("facesearch_request_seconds", "RPC and HTTP request latency", ["method"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("facesearch_batch_size", "items per micro-batch", ["batcher"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("facesearch_queue_depth", "requests waiting for a micro-batch", ["batcher"],
                                 registry=r)
        self.gallery_faces = Gauge("facesearch_gallery_faces", "faces in the index", registry=r)

    def observe(self, method: str, code: grpc.StatusCode | str, seconds: float) -> None:
        """One call: an RPC (its name) or an HTTP request ("POST /v1/identify"), with its status name."""
        self.requests.labels(method, code if isinstance(code, str) else code.name).inc()
        self.latency.labels(method).observe(seconds)

    def batch(self, batcher: str, size: int) -> None:
        self.batch_size.labels(batcher).observe(size)

    def watch(self, embed_depth: Callable[[], int], search_depth: Callable[[], int], faces: Callable[[], int]) -> None:
        self.queue_depth.labels("embed").set_function(embed_depth)
        self.queue_depth.labels("search").set_function(search_depth)
        self.gallery_faces.set_function(faces)

    def serve(self, address: str, port: int):
        return start_http_server(port, addr=address, registry=self.registry)
