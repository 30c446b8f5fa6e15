"""Typed errors of the gallery; the server maps each to a gRPC status."""


class GalleryError(Exception):
    pass


class NotFoundError(GalleryError, KeyError):
    """An unknown identity or face (NOT_FOUND)."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(GalleryError, ValueError):
    """A value the gallery cannot store or search with (INVALID_ARGUMENT)."""


class InvalidEmbeddingError(InvalidInputError):
    """Wrong size, non-finite or zero vector (INVALID_ARGUMENT)."""


class ModelMismatchError(GalleryError):
    """The gallery belongs to another model id or dimension (FAILED_PRECONDITION)."""


class GalleryLockedError(GalleryError):
    """Another process holds the data directory."""
