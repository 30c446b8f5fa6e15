import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACE_MODE_UNSPECIFIED: _ClassVar[FaceMode]
    FACE_MODE_DETECT: _ClassVar[FaceMode]
    FACE_MODE_CROPPED: _ClassVar[FaceMode]

class CutoffSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUTOFF_SOURCE_UNSPECIFIED: _ClassVar[CutoffSource]
    CUTOFF_SOURCE_CONFIGURED: _ClassVar[CutoffSource]
    CUTOFF_SOURCE_CALIBRATED: _ClassVar[CutoffSource]
    CUTOFF_SOURCE_DEFAULT: _ClassVar[CutoffSource]
FACE_MODE_UNSPECIFIED: FaceMode
FACE_MODE_DETECT: FaceMode
FACE_MODE_CROPPED: FaceMode
CUTOFF_SOURCE_UNSPECIFIED: CutoffSource
CUTOFF_SOURCE_CONFIGURED: CutoffSource
CUTOFF_SOURCE_CALIBRATED: CutoffSource
CUTOFF_SOURCE_DEFAULT: CutoffSource

class IdentifyRequest(_message.Message):
    __slots__ = ("image", "embedding", "top_k", "max_distance", "face_mode", "max_faces", "source")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FACE_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    embedding: Embedding
    top_k: int
    max_distance: float
    face_mode: FaceMode
    max_faces: int
    source: str
    def __init__(self, image: _Optional[bytes] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ..., top_k: _Optional[int] = ..., max_distance: _Optional[float] = ..., face_mode: _Optional[_Union[FaceMode, str]] = ..., max_faces: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "model_id")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    model_id: str
    def __init__(self, values: _Optional[_Iterable[float]] = ..., model_id: _Optional[str] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("identity_id", "display_name", "distance", "face_id")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    display_name: str
    distance: float
    face_id: str
    def __init__(self, identity_id: _Optional[str] = ..., display_name: _Optional[str] = ..., distance: _Optional[float] = ..., face_id: _Optional[str] = ...) -> None: ...

class FaceResult(_message.Message):
    __slots__ = ("box", "detection_score", "known", "matches")
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    box: BoundingBox
    detection_score: float
    known: bool
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    def __init__(self, box: _Optional[_Union[BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., known: _Optional[bool] = ..., matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("faces", "model_id")
    FACES_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceResult]
    model_id: str
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceResult, _Mapping]]] = ..., model_id: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("identity_id", "display_name", "images", "embeddings", "face_mode", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    FACE_MODE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    display_name: str
    images: _containers.RepeatedScalarFieldContainer[bytes]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    face_mode: FaceMode
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, identity_id: _Optional[str] = ..., display_name: _Optional[str] = ..., images: _Optional[_Iterable[bytes]] = ..., embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., face_mode: _Optional[_Union[FaceMode, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("identity_id", "created", "face_ids", "rejected", "warnings", "duplicates")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    created: bool
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    rejected: _containers.RepeatedCompositeFieldContainer[Rejected]
    warnings: _containers.RepeatedCompositeFieldContainer[EnrollWarning]
    duplicates: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, identity_id: _Optional[str] = ..., created: _Optional[bool] = ..., face_ids: _Optional[_Iterable[str]] = ..., rejected: _Optional[_Iterable[_Union[Rejected, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[EnrollWarning, _Mapping]]] = ..., duplicates: _Optional[_Iterable[int]] = ...) -> None: ...

class EnrollWarning(_message.Message):
    __slots__ = ("index", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    message: str
    def __init__(self, index: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Rejected(_message.Message):
    __slots__ = ("index", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("image", "embedding", "identity_id", "max_distance", "face_mode")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FACE_MODE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    embedding: Embedding
    identity_id: str
    max_distance: float
    face_mode: FaceMode
    def __init__(self, image: _Optional[bytes] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ..., identity_id: _Optional[str] = ..., max_distance: _Optional[float] = ..., face_mode: _Optional[_Union[FaceMode, str]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("match", "distance", "face_id", "face_found")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_FOUND_FIELD_NUMBER: _ClassVar[int]
    match: bool
    distance: float
    face_id: str
    face_found: bool
    def __init__(self, match: _Optional[bool] = ..., distance: _Optional[float] = ..., face_id: _Optional[str] = ..., face_found: _Optional[bool] = ...) -> None: ...

class GetIdentityRequest(_message.Message):
    __slots__ = ("identity_id",)
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    def __init__(self, identity_id: _Optional[str] = ...) -> None: ...

class Identity(_message.Message):
    __slots__ = ("identity_id", "display_name", "metadata", "face_count", "face_ids")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    display_name: str
    metadata: _containers.ScalarMap[str, str]
    face_count: int
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, identity_id: _Optional[str] = ..., display_name: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., face_count: _Optional[int] = ..., face_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListIdentitiesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "prefix")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    prefix: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., prefix: _Optional[str] = ...) -> None: ...

class ListIdentitiesResponse(_message.Message):
    __slots__ = ("identities", "next_page_token")
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    identities: _containers.RepeatedCompositeFieldContainer[Identity]
    next_page_token: str
    def __init__(self, identities: _Optional[_Iterable[_Union[Identity, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteIdentityRequest(_message.Message):
    __slots__ = ("identity_id",)
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    def __init__(self, identity_id: _Optional[str] = ...) -> None: ...

class DeleteIdentityResponse(_message.Message):
    __slots__ = ("faces_deleted",)
    FACES_DELETED_FIELD_NUMBER: _ClassVar[int]
    faces_deleted: int
    def __init__(self, faces_deleted: _Optional[int] = ...) -> None: ...

class DeleteFaceRequest(_message.Message):
    __slots__ = ("face_id",)
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    def __init__(self, face_id: _Optional[str] = ...) -> None: ...

class DeleteFaceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Info(_message.Message):
    __slots__ = ("model_id", "dimension", "default_max_distance", "identity_count", "face_count", "index_type", "version", "default_max_distance_source", "calibration_stale", "changes_since_calibration", "calibrated_at", "keep_unknown_days")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_DISTANCE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_STALE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_SINCE_CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_AT_FIELD_NUMBER: _ClassVar[int]
    KEEP_UNKNOWN_DAYS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    dimension: int
    default_max_distance: float
    identity_count: int
    face_count: int
    index_type: str
    version: str
    default_max_distance_source: CutoffSource
    calibration_stale: bool
    changes_since_calibration: int
    calibrated_at: float
    keep_unknown_days: float
    def __init__(self, model_id: _Optional[str] = ..., dimension: _Optional[int] = ..., default_max_distance: _Optional[float] = ..., identity_count: _Optional[int] = ..., face_count: _Optional[int] = ..., index_type: _Optional[str] = ..., version: _Optional[str] = ..., default_max_distance_source: _Optional[_Union[CutoffSource, str]] = ..., calibration_stale: _Optional[bool] = ..., changes_since_calibration: _Optional[int] = ..., calibrated_at: _Optional[float] = ..., keep_unknown_days: _Optional[float] = ...) -> None: ...

class CalibrateRequest(_message.Message):
    __slots__ = ("target_fpir", "target_fnir", "apply")
    TARGET_FPIR_FIELD_NUMBER: _ClassVar[int]
    TARGET_FNIR_FIELD_NUMBER: _ClassVar[int]
    APPLY_FIELD_NUMBER: _ClassVar[int]
    target_fpir: float
    target_fnir: float
    apply: bool
    def __init__(self, target_fpir: _Optional[float] = ..., target_fnir: _Optional[float] = ..., apply: _Optional[bool] = ...) -> None: ...

class CalibrateResponse(_message.Message):
    __slots__ = ("max_distance", "expected_fpir", "expected_fnir", "identities", "genuine_comparisons", "impostor_comparisons", "applied", "faces", "sampled")
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FPIR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FNIR_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    GENUINE_COMPARISONS_FIELD_NUMBER: _ClassVar[int]
    IMPOSTOR_COMPARISONS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_FIELD_NUMBER: _ClassVar[int]
    max_distance: float
    expected_fpir: float
    expected_fnir: float
    identities: int
    genuine_comparisons: int
    impostor_comparisons: int
    applied: bool
    faces: int
    sampled: bool
    def __init__(self, max_distance: _Optional[float] = ..., expected_fpir: _Optional[float] = ..., expected_fnir: _Optional[float] = ..., identities: _Optional[int] = ..., genuine_comparisons: _Optional[int] = ..., impostor_comparisons: _Optional[int] = ..., applied: _Optional[bool] = ..., faces: _Optional[int] = ..., sampled: _Optional[bool] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("image", "face_mode", "max_faces")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FACE_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    face_mode: FaceMode
    max_faces: int
    def __init__(self, image: _Optional[bytes] = ..., face_mode: _Optional[_Union[FaceMode, str]] = ..., max_faces: _Optional[int] = ...) -> None: ...

class FaceEmbedding(_message.Message):
    __slots__ = ("box", "detection_score", "embedding")
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    box: BoundingBox
    detection_score: float
    embedding: Embedding
    def __init__(self, box: _Optional[_Union[BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("faces",)
    FACES_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceEmbedding]
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceEmbedding, _Mapping]]] = ...) -> None: ...

class UpdateIdentityRequest(_message.Message):
    __slots__ = ("identity_id", "display_name", "metadata", "update_mask")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    display_name: str
    metadata: _containers.ScalarMap[str, str]
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, identity_id: _Optional[str] = ..., display_name: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class MergeIdentitiesRequest(_message.Message):
    __slots__ = ("source_ids", "target_id")
    SOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    source_ids: _containers.RepeatedScalarFieldContainer[str]
    target_id: str
    def __init__(self, source_ids: _Optional[_Iterable[str]] = ..., target_id: _Optional[str] = ...) -> None: ...

class MergeIdentitiesResponse(_message.Message):
    __slots__ = ("faces_moved",)
    FACES_MOVED_FIELD_NUMBER: _ClassVar[int]
    faces_moved: int
    def __init__(self, faces_moved: _Optional[int] = ...) -> None: ...

class MoveFacesRequest(_message.Message):
    __slots__ = ("face_ids", "target_identity_id", "create_if_missing")
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_IF_MISSING_FIELD_NUMBER: _ClassVar[int]
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    target_identity_id: str
    create_if_missing: bool
    def __init__(self, face_ids: _Optional[_Iterable[str]] = ..., target_identity_id: _Optional[str] = ..., create_if_missing: _Optional[bool] = ...) -> None: ...

class MoveFacesResponse(_message.Message):
    __slots__ = ("faces_moved",)
    FACES_MOVED_FIELD_NUMBER: _ClassVar[int]
    faces_moved: int
    def __init__(self, faces_moved: _Optional[int] = ...) -> None: ...

class ListFacesRequest(_message.Message):
    __slots__ = ("identity_id", "page_size", "page_token")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    page_size: int
    page_token: str
    def __init__(self, identity_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("face_id", "identity_id", "model_id", "box", "detection_score", "source_sha256", "source_path", "created_at", "has_image")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    HAS_IMAGE_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    identity_id: str
    model_id: str
    box: BoundingBox
    detection_score: float
    source_sha256: str
    source_path: str
    created_at: _timestamp_pb2.Timestamp
    has_image: bool
    def __init__(self, face_id: _Optional[str] = ..., identity_id: _Optional[str] = ..., model_id: _Optional[str] = ..., box: _Optional[_Union[BoundingBox, _Mapping]] = ..., detection_score: _Optional[float] = ..., source_sha256: _Optional[str] = ..., source_path: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_image: _Optional[bool] = ...) -> None: ...

class ListFacesResponse(_message.Message):
    __slots__ = ("faces", "next_page_token")
    FACES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    next_page_token: str
    def __init__(self, faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetFaceImageRequest(_message.Message):
    __slots__ = ("face_id",)
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    def __init__(self, face_id: _Optional[str] = ...) -> None: ...

class FaceImage(_message.Message):
    __slots__ = ("jpeg",)
    JPEG_FIELD_NUMBER: _ClassVar[int]
    jpeg: bytes
    def __init__(self, jpeg: _Optional[bytes] = ...) -> None: ...

class ListUnknownClustersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class UnknownCluster(_message.Message):
    __slots__ = ("cluster_id", "size", "first_seen", "last_seen", "sample_face_ids", "sources")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    size: int
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    sample_face_ids: _containers.RepeatedScalarFieldContainer[str]
    sources: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cluster_id: _Optional[str] = ..., size: _Optional[int] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sample_face_ids: _Optional[_Iterable[str]] = ..., sources: _Optional[_Iterable[str]] = ...) -> None: ...

class ListUnknownClustersResponse(_message.Message):
    __slots__ = ("clusters", "next_page_token", "waiting_faces", "total_faces")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WAITING_FACES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FACES_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[UnknownCluster]
    next_page_token: str
    waiting_faces: int
    total_faces: int
    def __init__(self, clusters: _Optional[_Iterable[_Union[UnknownCluster, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., waiting_faces: _Optional[int] = ..., total_faces: _Optional[int] = ...) -> None: ...

class GetUnknownFaceImageRequest(_message.Message):
    __slots__ = ("face_id",)
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    def __init__(self, face_id: _Optional[str] = ...) -> None: ...

class EnrollUnknownClusterRequest(_message.Message):
    __slots__ = ("cluster_id", "identity_id", "display_name")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    identity_id: str
    display_name: str
    def __init__(self, cluster_id: _Optional[str] = ..., identity_id: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class DeleteUnknownRequest(_message.Message):
    __slots__ = ("cluster_id", "all")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    all: bool
    def __init__(self, cluster_id: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class DeleteUnknownResponse(_message.Message):
    __slots__ = ("faces_deleted",)
    FACES_DELETED_FIELD_NUMBER: _ClassVar[int]
    faces_deleted: int
    def __init__(self, faces_deleted: _Optional[int] = ...) -> None: ...
