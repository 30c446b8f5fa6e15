"""Page tokens: opaque to clients, a position (the last row's key) to the gallery.

Identities page by identities.id ("i:<pk>"), faces by faces.id ("f:<id>"); a token of one
kind is refused by the other.
"""

from __future__ import annotations

import base64

from .errors import InvalidInputError

# identities.id is a 32-bit INTEGER on PostgreSQL; a bigger position is not one we issued
# (and would fail in SQL rather than as a bad token). faces.id is a BIGINT.
MAX_POSITION = (1 << 31) - 1
MAX_FACE_POSITION = (1 << 63) - 1
LIMITS = {"i": MAX_POSITION, "f": MAX_FACE_POSITION, "u": MAX_FACE_POSITION}   # u: an offset (unknown.py)


def encode_token(pk: int, kind: str = "i") -> str:
    return base64.urlsafe_b64encode(f"{kind}:{pk}".encode()).decode().rstrip("=")


def decode_token(token: str, kind: str = "i") -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        found, value = raw.split(":", 1)
        if found != kind or not value.isascii() or not value.isdigit() or int(value) > LIMITS[kind]:
            raise ValueError(found)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(f"page_token {token[:40]!r} is not one this service issued") from None
