"""Decoding caller images into RGB arrays, safely.

The pixel limit is checked on the header, before any pixel is decoded, so a
decompression bomb costs nothing. EXIF orientation is honoured and every
colour mode is converted to 8-bit RGB.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    EmptyImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    TruncatedImageError,
    UndecodableImageError,
    UnsupportedFormatError,
)

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_REQUEST_PIXELS = 400_000_000   # all the images of one request (the server's default)
DEFAULT_MIN_SIDE = 16

# Our own limit is applied first; Pillow's would only warn below 2x its default.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE


def decode(data: bytes, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Encoded JPEG/PNG/BMP/WebP bytes -> (H, W, 3) uint8 RGB, upright."""
    if not data:
        raise EmptyImageError("image is empty (0 bytes); send the encoded JPEG, PNG, BMP or WebP file")
    image = _open(data)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{limits.max_pixels:,}; downscale it (FACESEARCH_MAX_PIXELS sets the limit)"
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmallError(
            f"image is {width}x{height}; both sides must be at least {limits.min_side} pixels"
        )
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)   # no copy of a whole photo when upright already
    except OSError as exc:  # Pillow reports truncation as OSError
        if "truncat" in str(exc).lower():
            raise TruncatedImageError(f"{image.format} image is truncated: {exc}; send the whole file") from None
        raise UndecodableImageError(f"{image.format} image cannot be decoded: {exc}") from None
    except (ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UndecodableImageError(f"{image.format} image cannot be decoded: {exc}") from None
    return to_rgb(image)


def header_pixels(data: bytes) -> int:
    """width x height from the image's header alone (nothing is decoded); 0 when the header cannot
    be read (decode() then says why). For budgets checked before any decoding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as image:
                width, height = image.size
        except Exception:
            return 0
    return width * height


# Leading bytes of each supported format: when Pillow cannot read the header, these tell a
# cut-short or damaged file of a format we take apart from bytes that are no image at all.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
)


def sniff_format(data: bytes) -> str | None:
    """The supported format that `data` starts like, from its magic bytes alone (no decoding)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            pass
        if (fmt := sniff_format(data)) is not None:
            # e.g. the first 300 bytes of a JPEG: Pillow stops inside the header with
            # "Truncated File Read" (or cannot identify it when the cut is earlier still)
            raise TruncatedImageError(
                f"{fmt} image is truncated or corrupt: it starts like a {fmt} file but its header "
                f"cannot be decoded from the {len(data)} bytes received; send the whole file"
            ) from None
        try:  # a real image, but of a format we do not take?
            other = Image.open(io.BytesIO(data))
        except Exception:
            other = None
    if other is not None and other.format:
        raise UnsupportedFormatError(
            f"{other.format} images are not supported; send JPEG, PNG, BMP or WebP"
        )
    raise UndecodableImageError(
        f"bytes are not a JPEG, PNG, BMP or WebP image (starts with {data[:8].hex()}, {len(data)} bytes)"
    )


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB. Transparency is flattened onto white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        image = Image.fromarray(arr.astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")   # opaque (e.g. WebP, decoded as RGBA): no white background to lay
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def load_file(path: str | os.PathLike[str], limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Decode an image file from disk with the same checks as caller bytes."""
    with open(path, "rb") as f:
        return decode(f.read(), limits)


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """RGB uint8 -> JPEG bytes, e.g. a face crop kept for reindexing."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()
