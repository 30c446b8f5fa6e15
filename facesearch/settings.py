"""The one settings layer: each component declares its options once, as the fields of one
pydantic-settings class, and both its FACESEARCH_* variable and its flag come from that field.

    class EmbedderConfig(Settings):
        model: str = setting("facenet-128", "model spec: facenet-128, keras-facenet:<key> or a folder")

    EmbedderConfig(model="x")              # explicit values and defaults only: never the environment
    EmbedderConfig.from_env(model="x")     # overrides > FACESEARCH_* variables > defaults
    add_flags(parser, EmbedderConfig, only=["model"])
    EmbedderConfig.from_args(args)         # flags > FACESEARCH_* variables > defaults

A field `name` reads FACESEARCH_<NAME> unless `setting(..., env="OTHER")` names the variable;
its flag is the variable without the prefix, in lower case with dashes (FACESEARCH_INDEX: --index).
Fields declared with `fixed()`, and nested settings classes, are no settings of their own. An
empty variable counts as unset. A value that does not validate raises SettingError, one line that
names the variable or flag it came from.
"""

from __future__ import annotations

import argparse
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Callable, Collection, Iterable, Literal, Mapping, Self, Sequence, get_args, get_origin

from pydantic import AfterValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "FACESEARCH_"

_read_env: ContextVar[bool] = ContextVar("facesearch_read_env", default=False)


UserPath = Annotated[Path, AfterValidator(lambda path: path.expanduser())]  # a path setting; ~ expands


class SettingError(ValueError):
    """A setting (a FACESEARCH_* variable, a flag or an override) holds a value that cannot be used."""


def setting(default: Any = ..., description: str = "", *, env: str | None = None, shown: str | None = None,
            default_factory: Callable[[], Any] | None = None, empty_is_a_value: bool = False,
            **constraints: Any) -> Any:
    """A field that is a setting: `description` is its help text; `env` the variable's name without
    the prefix when it is not the field's; `shown` how --help and the README print the default;
    `empty_is_a_value`: an empty variable sets "" (e.g. "off") rather than counting as unset."""
    extra: dict[str, Any] = {"setting": env or True}
    if shown is not None:
        extra["shown"] = shown
    if empty_is_a_value:
        extra["empty_is_a_value"] = True
    if default_factory is not None:
        return Field(default_factory=default_factory, description=description, json_schema_extra=extra,
                     **constraints)
    return Field(default, description=description, json_schema_extra=extra, **constraints)


def fixed(default: Any, description: str = "") -> Any:
    """A field that code may set but that has no variable or flag."""
    return Field(default, description=description, json_schema_extra={"setting": False})


def _extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def _nested(field: FieldInfo) -> type[Settings] | None:
    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, Settings) else None


def _is_setting(field: FieldInfo) -> bool:
    return _extra(field).get("setting", True) is not False and _nested(field) is None


def env_var(cls: type[Settings], name: str) -> str:
    """The FACESEARCH_* variable of field `name`."""
    own = _extra(cls.model_fields[name]).get("setting")
    return PREFIX + (own if isinstance(own, str) else name).upper()


def flag(cls: type[Settings], name: str) -> str:
    return "--" + env_var(cls, name)[len(PREFIX):].lower().replace("_", "-")


def _dest(cls: type[Settings], name: str) -> str:
    return env_var(cls, name)[len(PREFIX):].lower()


def shown_default(cls: type[Settings], name: str) -> str:
    field = cls.model_fields[name]
    if "shown" in _extra(field):
        return str(_extra(field)["shown"])
    value = field.get_default(call_default_factory=True)
    return "(empty)" if value == "" else str(value)


class _Environment(EnvSettingsSource):
    """One FACESEARCH_* variable per setting, named by env_var(); other fields read none."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if not _is_setting(field):
            return None, field_name, False
        name = env_var(self.settings_cls, field_name)  # type: ignore[arg-type]  # only Settings use this source
        value = self.env_vars.get(name)   # empty variables are left out (env_ignore_empty) ...
        if value is None and _extra(field).get("empty_is_a_value") and os.environ.get(name) == "":
            value = ""                    # ... but where "" means something, it is a value
        return value, field_name, False


class Settings(BaseSettings):
    """Base of the components' settings classes. Immutable; unknown names are errors."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, case_sensitive=True, env_ignore_empty=True,
                                      frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Plain construction takes explicit values and defaults only, so that a test or a benchmark
        # never picks up a FACESEARCH_* variable (a DATABASE_URL, say) from the shell by accident.
        return (init_settings, _Environment(settings_cls)) if _read_env.get() else (init_settings,)

    @classmethod
    def setting_names(cls) -> list[str]:
        return [name for name, field in cls.model_fields.items() if _is_setting(field)]

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """Overrides > FACESEARCH_* variables > defaults."""
        return cls._load(None, overrides)

    @classmethod
    def from_args(cls, args: argparse.Namespace | None, **overrides: Any) -> Self:
        """Overrides > flags that add_flags() added and were given > FACESEARCH_* variables > defaults."""
        return cls._load(args, overrides)

    @classmethod
    def _load(cls, args: argparse.Namespace | None, overrides: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {}
        origins = {name: name for name in overrides}
        for name, field in cls.model_fields.items():
            if name in overrides:
                continue
            if (nested := _nested(field)) is not None:
                values[name] = nested._load(args, {})
            elif _is_setting(field) and args is not None and getattr(args, _dest(cls, name), None) is not None:
                values[name] = getattr(args, _dest(cls, name))
                origins[name] = getattr(args, _Flag.given(_dest(cls, name)), flag(cls, name))
        values.update(overrides)
        token = _read_env.set(True)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingError(_describe(cls, exc, origins)) from None
        finally:
            _read_env.reset(token)


def _describe(cls: type[Settings], exc: ValidationError, origins: Mapping[str, str]) -> str:
    """One line per ValidationError: which variable, flag or override, its value, and what is wrong."""
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if message[1:2].islower():  # "Input should be ..." but not "TLS needs ..."
            message = message[:1].lower() + message[1:]
        loc = error["loc"]
        if loc:
            name = str(loc[0])
            where = origins.get(name) or (env_var(cls, name) if name in cls.model_fields else name)
            parts.append(f"{where}={error['input']!r}: {message}")
        else:
            parts.append(message)
    return "; ".join(parts)


def names(cls: type[Settings], name: str) -> str:
    """How an error that is not about one value names a setting: 'FACESEARCH_TLS_KEY (--tls-key)'."""
    return f"{env_var(cls, name)} ({flag(cls, name)})"


class _Flag(argparse.Action):
    """Stores the value, and which flag gave it, so that an error names the flag the user typed."""

    @staticmethod
    def given(dest: str) -> str:
        return f"{dest}__flag"

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, self.given(self.dest), option_string)


_METAVARS = {int: "N", float: "X", bool: "BOOL", Path: "PATH"}


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *classes: type[Settings],
              only: Iterable[str] | None = None, rename: Mapping[str, str] | None = None,
              skip: Collection[str] = ()) -> set[str]:
    """Add one flag per setting of `classes` (those in `only`, if given; none whose variable is in
    `skip`; a variable two classes share gets one flag). Help is the field's description, its
    variable and its default; the flag defaults to None so that from_args() can tell it was not
    given. `rename` keeps a tool's older flag name for a field. Returns the variables added."""
    wanted = set(only) if only is not None else None
    added: set[str] = set()
    for cls in classes:
        for name in cls.setting_names():
            var = env_var(cls, name)
            if (wanted is not None and name not in wanted) or var in added or var in skip:
                continue
            field = cls.model_fields[name]
            choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
            text = f"{field.description} [{var}, default {shown_default(cls, name)}]".replace("%", "%%")
            kind = field.annotation
            metavar = None if choices else _METAVARS.get(kind, _dest(cls, name).upper()) if isinstance(kind, type) \
                else _dest(cls, name).upper()
            switch: dict[str, Any] = {"nargs": "?", "const": "true"} if kind is bool else {}  # --insecure alone: true
            parser.add_argument((rename or {}).get(name, flag(cls, name)), dest=_dest(cls, name), default=None,
                                choices=choices, metavar=metavar, help=text, action=_Flag, **switch)
            added.add(var)
    return added


def table(*classes: type[Settings]) -> str:
    """The README's settings table: variable, flag, default and meaning of every setting."""
    rows = ["| Variable | Flag | Default | Meaning |", "|---|---|---|---|"]
    seen: set[str] = set()
    for cls in classes:
        for name in cls.setting_names():
            var = env_var(cls, name)
            if var not in seen:
                seen.add(var)
                description = (cls.model_fields[name].description or "").replace("|", "\\|")
                rows.append(f"| `{var}` | `{flag(cls, name)}` | `{shown_default(cls, name)}` | {description} |")
    return "\n".join(rows) + "\n"


def default_cache_dir() -> Path:
    """~/.cache/facesearch, or $XDG_CACHE_HOME/facesearch."""
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "facesearch"
