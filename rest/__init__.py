"""facesearch.rest: the REST/JSON adapter over FaceSearchService (docs/api.md). It imports no gRPC;
the server process (facesearch.server.app) runs it beside the gRPC adapter."""

from .app import HttpOptions, create_app
from .serve import HttpServer

__all__ = ["HttpOptions", "HttpServer", "create_app"]
