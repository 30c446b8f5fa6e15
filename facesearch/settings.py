"""Environment-variable helpers shared by every component.

Every option has a FACESEARCH_* variable (DESIGN.md §2). Components declare
their settings with these helpers so that parsing and error messages agree.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "FACESEARCH_"


class SettingError(ValueError):
    """A FACESEARCH_* variable holds a value that cannot be used."""


def env_name(name: str) -> str:
    return PREFIX + name.upper()


def env_str(name: str, default: str) -> str:
    return os.environ.get(env_name(name), default)


def env_path(name: str, default: str | Path) -> Path:
    return Path(os.path.expanduser(env_str(name, str(default))))


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(env_name(name))
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{env_name(name)}={raw!r} is not an integer") from None
    if maximum is not None and (value > maximum or (minimum is not None and value < minimum)):
        raise SettingError(f"{env_name(name)}={value} must be within [{minimum}, {maximum}]")
    if minimum is not None and value < minimum:
        raise SettingError(f"{env_name(name)}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(env_name(name))
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{env_name(name)}={raw!r} is not a number") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SettingError(f"{env_name(name)}={value} must be within [{minimum}, {maximum}]")
    return value


def cache_dir() -> Path:
    """Where weights and the sample gallery are cached (FACESEARCH_CACHE_DIR)."""
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return env_path("cache_dir", Path(xdg) / "facesearch")


def data_dir() -> Path:
    """Where the gallery lives (FACESEARCH_DATA_DIR, default ./var)."""
    return env_path("data_dir", "var")
