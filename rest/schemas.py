"""The JSON shapes of the REST API: the proto messages' fields, by their proto names (snake_case).

Requests carry an image as base64 in JSON, or as a file part of multipart/form-data; face ids are
strings as in the proto; counts are numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

UINT32 = (1 << 32) - 1
FaceModeName = Literal["FACE_MODE_UNSPECIFIED", "FACE_MODE_DETECT", "FACE_MODE_CROPPED"]
CutoffSourceName = Literal["CUTOFF_SOURCE_UNSPECIFIED", "CUTOFF_SOURCE_CONFIGURED", "CUTOFF_SOURCE_CALIBRATED",
                           "CUTOFF_SOURCE_DEFAULT"]


class Strict(BaseModel):
    """Unknown fields and non-finite numbers are refused (422), not ignored."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Out(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)


# -- pieces -----------------------------------------------------------------------------------
class Error(Out):
    code: str = Field(description="the gRPC status name, e.g. INVALID_ARGUMENT")
    message: str


class BoundingBox(Out):
    x: int
    y: int
    width: int
    height: int


class Embedding(Strict):
    values: list[float] = Field(max_length=65536)
    model_id: str = Field("", max_length=1024, description="the model that made it; empty: not checked")


class Match(Out):
    identity_id: str
    display_name: str
    distance: float
    face_id: str


class FaceResult(Out):
    box: BoundingBox | None = Field(description="null for an embedding query")
    detection_score: float
    known: bool
    matches: list[Match]


class Identity(Out):
    identity_id: str
    display_name: str
    metadata: dict[str, str]
    face_count: int
    face_ids: list[str]


# -- requests with an image (JSON; multipart carries the same fields as form fields) ---------------
IMAGE = "the encoded photo (JPEG, PNG, BMP or WebP) in base64; a data: URL prefix is allowed"


class IdentifyRequest(Strict):
    image: str | None = Field(None, description=IMAGE)
    embedding: Embedding | None = Field(None, description="instead of an image")
    top_k: int = Field(0, ge=0, le=UINT32, description="matches per face (0: 1)")
    max_distance: float = Field(0.0, description="the cutoff (0: the server's default)")
    face_mode: FaceModeName = "FACE_MODE_UNSPECIFIED"
    max_faces: int = Field(0, ge=0, le=UINT32, description="0: every face found")
    source: str = Field("", max_length=255, description="e.g. a camera's name; kept with an unknown face when "
                                                        "the server keeps them (--keep-unknown-days)")


class VerifyRequest(Strict):
    image: str | None = Field(None, description=IMAGE)
    embedding: Embedding | None = None
    identity_id: str
    max_distance: float = 0.0
    face_mode: FaceModeName = "FACE_MODE_UNSPECIFIED"


class EmbedRequest(Strict):
    image: str | None = Field(None, description=IMAGE + "; required")
    face_mode: FaceModeName = "FACE_MODE_UNSPECIFIED"
    max_faces: int = Field(0, ge=0, le=UINT32)


class AddFacesRequest(Strict):
    display_name: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    images: list[str] = Field(default_factory=list, description="encoded photos in base64")
    embeddings: list[Embedding] = Field(default_factory=list)
    face_mode: FaceModeName = "FACE_MODE_UNSPECIFIED"


class EnrollRequest(AddFacesRequest):
    identity_id: str


class UpdateIdentityRequest(Strict):
    """The fields to change: a field given is set, and given as null or empty it is cleared."""
    display_name: str | None = None
    metadata: dict[str, str] | None = None


class MergeIdentitiesRequest(Strict):
    source_ids: list[str] = Field(max_length=1000, description="identities whose faces move to the one in the path; "
                                                               "they are deleted")


class MoveFacesRequest(Strict):
    face_ids: list[str] = Field(max_length=1000)
    target_identity_id: str
    create_if_missing: bool = False


class CalibrateRequest(Strict):
    target_fpir: float = Field(0.0, description="wanted false-positive identification rate (0: not set)")
    target_fnir: float = Field(0.0, description="wanted false-negative identification rate (0: not set)")
    apply: bool = Field(False, description="store the cutoff for every replica")


# -- responses --------------------------------------------------------------------------------
class IdentifyResponse(Out):
    faces: list[FaceResult]
    model_id: str


class Rejected(Out):
    index: int
    reason: str


class EnrollWarning(Out):
    index: int
    message: str


class EnrollResponse(Out):
    identity_id: str
    created: bool
    face_ids: list[str]
    rejected: list[Rejected]
    warnings: list[EnrollWarning]
    duplicates: list[int]


class VerifyResponse(Out):
    match: bool
    distance: float
    face_id: str
    face_found: bool


class FaceEmbedding(Out):
    box: BoundingBox | None
    detection_score: float
    embedding: Embedding


class EmbedResponse(Out):
    faces: list[FaceEmbedding]


class ListIdentitiesResponse(Out):
    identities: list[Identity]
    next_page_token: str


class DeleteIdentityResponse(Out):
    faces_deleted: int


class DeleteFaceResponse(Out):
    pass


class Info(Out):
    model_id: str
    dimension: int
    default_max_distance: float
    identity_count: int
    face_count: int
    index_type: str
    version: str
    default_max_distance_source: CutoffSourceName
    calibration_stale: bool
    changes_since_calibration: int
    calibrated_at: float = Field(description="Unix time of the applied calibration; 0: none")
    keep_unknown_days: float = Field(0.0, description="unknown faces are kept this many days "
                                                      "(--keep-unknown-days); 0: none are kept")


class CalibrateResponse(Out):
    max_distance: float
    expected_fpir: float
    expected_fnir: float
    identities: int
    genuine_comparisons: int
    impostor_comparisons: int
    applied: bool
    faces: int
    sampled: bool


class MovedResponse(Out):
    faces_moved: int


class Face(Out):
    face_id: str
    identity_id: str
    model_id: str
    box: BoundingBox | None = Field(description="in the source photo; null for a face enrolled as an embedding")
    detection_score: float
    source_sha256: str
    source_path: str
    created_at: str = Field(description="RFC 3339, UTC")
    has_image: bool = Field(description="a crop is stored: GET /v1/faces/{face_id}/image")


class ListFacesResponse(Out):
    faces: list[Face]
    next_page_token: str


class UnknownCluster(Out):
    cluster_id: str
    size: int
    first_seen: str = Field(description="RFC 3339, UTC (database time)")
    last_seen: str = Field(description="RFC 3339, UTC")
    sample_face_ids: list[str] = Field(description="up to 8, the most recent first: GET /v1/unknown/faces/{id}/image")
    sources: list[str] = Field(description="distinct Identify sources, up to 8")


class ListUnknownClustersResponse(Out):
    clusters: list[UnknownCluster]
    next_page_token: str
    waiting_faces: int = Field(description="kept faces in no cluster (yet)")
    total_faces: int


class EnrollUnknownClusterRequest(Strict):
    identity_id: str
    display_name: str = Field("", description="empty keeps an existing identity's name")


class DeleteUnknownResponse(Out):
    faces_deleted: int


class Health(Out):
    status: Literal["SERVING", "NOT_SERVING"]
