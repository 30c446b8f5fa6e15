"""facesearch.embedder: face photos in, FaceNet embeddings out.

    from facesearch.embedder import Embedder, FaceMode
    emb = Embedder.load()                     # facenet-128, verified weights
    faces = emb.embed_image(jpeg_bytes)       # detect with MTCNN, then embed
    vectors = emb.embed_crops([rgb_crop])     # (N, 128) unit float32
"""

from .config import DEFAULT_MODEL, EmbedderConfig
from .detect import Box, Face, FaceDetector, primary_face
from .distances import DEFAULT_CUTOFF, SCALE, distance, from_squared_l2, pairwise, to_squared_l2
from .embedder import EmbeddedFace, Embedder, FaceMode
from .errors import (
    EmbedderError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    ModelError,
    NetworkUnavailableError,
    TruncatedImageError,
    UndecodableImageError,
    UnknownModelError,
    UnsupportedFormatError,
    WeightsError,
)
from .images import ImageLimits, decode
from .models import LoadedModel, load_model
from .weights import WeightsCache

__all__ = [
    "Box", "DEFAULT_CUTOFF", "DEFAULT_MODEL", "EmbeddedFace", "Embedder", "EmbedderConfig", "EmbedderError",
    "EmptyImageError", "Face", "FaceDetector", "FaceMode", "ImageError", "ImageLimits", "ImageTooLargeError",
    "ImageTooSmallError", "LoadedModel", "ModelError", "NetworkUnavailableError", "SCALE", "TruncatedImageError",
    "UndecodableImageError", "UnknownModelError", "UnsupportedFormatError", "WeightsCache", "WeightsError",
    "decode", "distance", "from_squared_l2", "load_model", "pairwise", "primary_face", "to_squared_l2",
]
