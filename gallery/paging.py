"""Page tokens: opaque to clients, a position (the last identity's key) to the gallery."""

from __future__ import annotations

import base64

from .errors import InvalidInputError

# identities.id is a 32-bit INTEGER on PostgreSQL; a bigger position is not one we issued
# (and would fail in SQL rather than as a bad token).
MAX_POSITION = (1 << 31) - 1


def encode_token(pk: int) -> str:
    return base64.urlsafe_b64encode(f"i:{pk}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, value = raw.split(":", 1)
        if kind != "i" or not value.isdigit() or int(value) > MAX_POSITION:
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(f"page_token {token[:40]!r} is not one this service issued") from None
