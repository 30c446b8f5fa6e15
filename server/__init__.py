"""facesearch.server: the FaceSearch gRPC service (grpc.aio) with micro-batching, health,
reflection, token auth, TLS and Prometheus metrics. Entry point: facesearch-server."""
