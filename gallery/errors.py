"""Typed errors of the gallery; the server maps each to a gRPC status."""

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# What the gallery's SQL raises while its database cannot be reached or does not answer in time
# (connect timeout, pool timeout, a dropped connection): UNAVAILABLE to a caller, not INTERNAL.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)


class GalleryError(Exception):
    pass


class NotFoundError(GalleryError, KeyError):
    """An unknown identity or face (NOT_FOUND)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(GalleryError, ValueError):
    """A value the gallery cannot store or search with (INVALID_ARGUMENT)."""


class InvalidEmbeddingError(InvalidInputError):
    """Wrong size, non-finite or zero vector (INVALID_ARGUMENT)."""


class ModelMismatchError(GalleryError):
    """The gallery belongs to another model id or dimension (FAILED_PRECONDITION)."""


class StaleGenerationError(ModelMismatchError):
    """A write from a process that has not yet followed a reindex (FAILED_PRECONDITION); the Gallery
    follows and retries it once before it reaches a caller."""


class IndexUnavailableError(GalleryError):
    """The vector index's server cannot be reached; the message names it, for the log (UNAVAILABLE).

    public: what a client is told, naming the backend but not its URI or the backend's own error.
    """

    def __init__(self, message: str, public: str = "the vector index is unavailable"):
        super().__init__(message)
        self.public = public


class GalleryLockedError(GalleryError):
    """Another process holds the data directory."""


class InvalidTargetError(GalleryError, ValueError):
    """A calibration target outside [0, 1) (INVALID_ARGUMENT)."""


class CalibrationError(GalleryError):
    """Not enough data to calibrate, or a target no cutoff reaches (FAILED_PRECONDITION).

    floor: when set, the lowest FNIR any cutoff gives on this gallery.
    """

    def __init__(self, message: str, floor: float | None = None):
        super().__init__(message)
        self.floor = floor


class CalibrationBudgetError(GalleryError):
    """A calibration that would compare more pairs than calibration.MAX_PAIRS (RESOURCE_EXHAUSTED)."""


class CalibrationCancelled(GalleryError):
    """The caller cancelled a calibration (its thread stops at the next block of work)."""
