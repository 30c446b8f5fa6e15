"""facesearch-server: serves the FaceSearch gRPC API (docs/architecture.md#grpc-api) and the REST/JSON API
(docs/api.md) from one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from facesearch import settings
from facesearch.embedder import EmbedderConfig
from facesearch.gallery import GalleryConfig

from . import logs
from .app import serve
from .config import add_arguments, from_args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="facesearch-server",
        description="Serve the FaceSearch gRPC API (facesearch.v1.FaceSearch) with health checks and reflection, "
                    "and the same API as REST/JSON on --http-address (OpenAPI at /openapi.json, docs at /docs, the "
                    "web console at /). Every option also reads a FACESEARCH_* environment variable; flags win "
                    "over variables.",
        epilog="Health: grpc.health.v1 reports NOT_SERVING, and GET /readyz 503, until the model and gallery are "
               "loaded; GET /healthz answers while the process lives. SIGTERM drains in-flight requests for "
               "--grace-s seconds, then snapshots the index.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = from_args(args)
        logs.setup(config.log_format)
        embedder_config = EmbedderConfig.from_args(args)
        gallery_config = GalleryConfig.from_args(args)
    except settings.SettingError as exc:
        print(f"facesearch-server: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("facesearch.server").info("starting", extra={"address": config.grpc_address,
                                                                   "http_address": config.http_address})
    return asyncio.run(serve(config, embedder_config, gallery_config))


if __name__ == "__main__":
    sys.exit(main())
