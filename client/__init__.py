"""facesearch.client: Python clients for the FaceSearch gRPC API, and the facesearch-client CLI."""

from .client import DEFAULT_TARGET, AsyncFaceSearchClient, FaceMode, FaceSearchClient, identify_request

__all__ = ["AsyncFaceSearchClient", "DEFAULT_TARGET", "FaceMode", "FaceSearchClient", "identify_request"]
