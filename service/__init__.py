"""facesearch.service: the use cases (Identify, Enroll, Verify, Embed, identity and admin operations)
between the transports and the embedder and gallery.

    runtime = Runtime(embedder, gallery)      # detection threads, micro-batches, one writer
    runtime.start()                           # inside the serving event loop
    service = FaceSearchService(embedder, gallery, runtime)
    result = await service.identify(jpeg_bytes, top_k=3)
"""

from .errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unavailable,
    as_service_error,
)
from .results import (
    CalibrateResult,
    EmbeddedFace,
    EmbedResult,
    EnrollResult,
    FaceMatches,
    FaceRecord,
    IdentifyResult,
    Identity,
    Match,
    Rejection,
    ServiceInfo,
    VerifyResult,
)
from .runtime import Runtime
from .service import FaceSearchService, Limits, Query
from .validate import EmbeddingInput

__all__ = [
    "CalibrateResult", "EmbedResult", "EmbeddedFace", "EmbeddingInput", "EnrollResult", "FaceMatches", "FaceRecord",
    "FaceSearchService",
    "FailedPrecondition", "IdentifyResult", "Identity", "InvalidArgument", "Limits", "Match", "NotFound", "Query",
    "Rejection", "ResourceExhausted", "Runtime", "ServiceError", "ServiceInfo", "Unavailable", "VerifyResult",
    "as_service_error",
]
