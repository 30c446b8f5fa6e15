"""Request bodies with images: JSON with base64 images, or multipart/form-data with file parts.

Both become the same pydantic model (schemas.py) plus the decoded image bytes, so that every
check is made once: bad JSON, a bad field or an image sent as a text part is a 422, bad base64
a 400 (INVALID_ARGUMENT).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from facesearch.service import InvalidArgument

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
MULTIPART = "multipart/form-data"
FORM_JSON_FIELDS = ("metadata", "embedding", "embeddings")   # multipart text fields holding JSON


class BodyError(Exception):
    """A body that does not fit the schema: 422 with the validation errors."""

    def __init__(self, message: str):
        super().__init__(message)


def b64(text: str, field: str) -> bytes:
    """Standard base64, with or without a data: URL prefix."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{field} is not valid base64") from None


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])


def validated(model: type[M], data) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BodyError(_validation_message(exc)) from None


async def parse(request: Request, model: type[M], image_fields: tuple[str, ...],
                max_files: int) -> tuple[M, dict[str, list[bytes]]]:
    """(the fields, {image field: [image bytes, ...]}) of a JSON or multipart body."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == MULTIPART:
        return await _multipart(request, model, image_fields, max_files)
    if kind in (JSON, ""):
        try:
            data = json.loads(await request.body() or b"null")
        except (ValueError, RecursionError) as exc:   # RecursionError: nested too deep
            raise BodyError(f"the body is not valid JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
        parsed = validated(model, data)
        images: dict[str, list[bytes]] = {}
        for name in image_fields:
            value = getattr(parsed, name)
            if value is not None:
                values = value if isinstance(value, list) else [value]
                images[name] = [b64(v, name) for v in values]
        return parsed, images
    raise InvalidArgument(f"send the body as {JSON} (images in base64) or {MULTIPART} (images as file parts), "
                          f"not {kind!r}")


async def _multipart(request: Request, model: type[M], image_fields: tuple[str, ...],
                     max_files: int) -> tuple[M, dict[str, list[bytes]]]:
    try:
        form = await request.form(max_files=max_files, max_fields=1000)
    except HTTPException as exc:   # Starlette's multipart parser: a malformed body or too many parts
        raise InvalidArgument(f"bad multipart body: {exc.detail}") from None
    try:
        fields: dict = {}
        images: dict[str, list[bytes]] = {}
        for key, value in form.multi_items():
            if key in image_fields:
                if not isinstance(value, UploadFile):
                    raise BodyError(f"{key}: a file part (curl -F {key}=@photo.jpg); base64 goes in a JSON body")
                images.setdefault(key, []).append(await value.read())
            elif isinstance(value, UploadFile):
                raise BodyError(f"{key}: a file part where a text field is expected")
            elif key in FORM_JSON_FIELDS:
                try:
                    fields[key] = json.loads(value)
                except (ValueError, RecursionError):
                    raise BodyError(f"{key}: a multipart field holding JSON, e.g. {{\"k\": \"v\"}}") from None
            elif key in fields:
                raise BodyError(f"{key}: given twice")
            else:
                fields[key] = value
    finally:
        await form.close()
    return validated(model, fields), images
