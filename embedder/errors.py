"""Typed errors of the embedder. Messages say what is wrong and what to do."""


class EmbedderError(Exception):
    """Base class of every error raised by facesearch.embedder."""


class ImageError(EmbedderError, ValueError):
    """The caller's image cannot be used (maps to INVALID_ARGUMENT)."""


class EmptyImageError(ImageError):
    pass


class UndecodableImageError(ImageError):
    pass


class TruncatedImageError(UndecodableImageError):
    pass


class UnsupportedFormatError(ImageError):
    pass


class ImageTooSmallError(ImageError):
    pass


class ImageTooLargeError(ImageError):
    """Over the pixel limit; refused before the pixels are decoded (RESOURCE_EXHAUSTED)."""


class ModelError(EmbedderError):
    """A model cannot be resolved, fetched or loaded."""


class UnknownModelError(ModelError, ValueError):
    pass


class WeightsError(ModelError):
    """Weights are missing, fail their checksum, or did not load into every layer."""


class NetworkUnavailableError(ModelError):
    """Fetching needs the network and the network did not answer."""
