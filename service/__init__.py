"""facesearch.service: the use cases (Identify, Enroll, Verify, Embed, identity and admin operations)
between the transports and the embedder and gallery.

    built = await assemble(embedder_config, gallery_config, Tuning(), Limits())   # what a transport uses
    result = await built.service.identify(jpeg_bytes, top_k=3)
    await built.close()

    # or by hand: Runtime(embedder, gallery).start(); FaceSearchService(embedder, gallery, runtime)
"""

from .errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Overloaded,
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
from .assembly import Assembled, Tuning, assemble
from .runtime import Runtime
from .service import FaceSearchService, Limits, Query
from .unknown import Retention, UnknownKeeper
from facesearch.gallery import UnknownCluster, UnknownPage
from .validate import EmbeddingInput

__all__ = [
    "Assembled", "Tuning", "assemble", "Overloaded",
    "CalibrateResult", "EmbedResult", "EmbeddedFace", "EmbeddingInput", "EnrollResult", "FaceMatches", "FaceRecord",
    "FaceSearchService",
    "FailedPrecondition", "IdentifyResult", "Identity", "InvalidArgument", "Limits", "Match", "NotFound", "Query",
    "Rejection", "ResourceExhausted", "Retention", "Runtime", "ServiceError", "ServiceInfo", "Unavailable",
    "UnknownCluster", "UnknownKeeper", "UnknownPage", "VerifyResult", "as_service_error",
]
