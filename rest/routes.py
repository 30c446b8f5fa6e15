"""The /v1 endpoints (docs/api.md): each converts its body to one FaceSearchService call and the
result to JSON; errors go through errors.py. No logic of their own."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse

from facesearch.service import FaceSearchService, InvalidArgument, Unavailable

from . import convert, schemas
from .bodies import FORM_JSON_FIELDS, parse
from .errors import ERROR_STATUSES, LOADING

router = APIRouter(prefix="/v1", responses={s: {"model": schemas.Error, "description": d}
                                            for s, d in ERROR_STATUSES.items()})


def service(request: Request) -> FaceSearchService:
    found = request.app.state.service
    if found is None:
        raise Unavailable(LOADING)
    return found


def max_files(request: Request) -> int:
    return request.app.state.options.max_files


def body_doc(model: type[schemas.Strict], images: tuple[str, ...]) -> dict:
    """The request body in the OpenAPI document: the model as JSON (base64 images), or the same
    fields as multipart/form-data with images as file parts and JSON-valued fields as text."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    form = {}
    for name, prop in schema["properties"].items():
        if name in images:
            binary = {"type": "string", "format": "binary"}
            form[name] = {"type": "array", "items": binary} if prop.get("type") == "array" else binary
        elif name in FORM_JSON_FIELDS:
            form[name] = {"type": "string", "description": f"{name} as JSON"}
        else:
            form[name] = prop
    required = schema.get("required", [])
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": form, "required": required,
                                           "additionalProperties": False}}}}}


BODY_MODELS = [schemas.IdentifyRequest, schemas.VerifyRequest, schemas.EmbedRequest, schemas.EnrollRequest,
               schemas.AddFacesRequest]   # added to the document's components (app.py)


def one_image(images: dict[str, list[bytes]]) -> bytes | None:
    found = images.get("image") or []
    if len(found) > 1:
        raise InvalidArgument("one image per request")
    return found[0] if found else None


def query_of(body, images: dict[str, list[bytes]]):
    """An image or an embedding (the proto's oneof); the service refuses neither."""
    image = one_image(images)
    if image is not None and body.embedding is not None:
        raise InvalidArgument("set either image or embedding, not both")
    if image is not None:
        return image
    return convert.embedding(body.embedding) if body.embedding is not None else None


@router.post("/identify", response_model=schemas.IdentifyResponse, operation_id="identify",
             openapi_extra=body_doc(schemas.IdentifyRequest, ("image",)),
             summary="Every face in a photo (or one embedding) with its nearest identities")
async def identify(request: Request):
    body, images = await parse(request, schemas.IdentifyRequest, ("image",), max_files(request))
    result = await service(request).identify(query_of(body, images), top_k=body.top_k,
                                             max_distance=body.max_distance,
                                             face_mode=convert.face_mode(body.face_mode), max_faces=body.max_faces)
    return JSONResponse(convert.identify(result))


@router.post("/verify", response_model=schemas.VerifyResponse, operation_id="verify",
             openapi_extra=body_doc(schemas.VerifyRequest, ("image",)),
             summary="1:1: a photo's main face (or an embedding) against one identity")
async def verify(request: Request):
    body, images = await parse(request, schemas.VerifyRequest, ("image",), max_files(request))
    result = await service(request).verify(query_of(body, images), body.identity_id,
                                           max_distance=body.max_distance, face_mode=convert.face_mode(body.face_mode))
    return JSONResponse(convert.verify(result))


@router.post("/embed", response_model=schemas.EmbedResponse, operation_id="embed",
             openapi_extra=body_doc(schemas.EmbedRequest, ("image",)),
             summary="The faces in a photo and their embeddings; nothing is stored")
async def embed(request: Request):
    body, images = await parse(request, schemas.EmbedRequest, ("image",), max_files(request))
    image = one_image(images)
    if image is None:
        raise InvalidArgument("set image")
    result = await service(request).embed(image, face_mode=convert.face_mode(body.face_mode),
                                          max_faces=body.max_faces)
    return JSONResponse(convert.embed(result))


async def _enroll(request: Request, identity_id: str, body: schemas.AddFacesRequest, images) -> JSONResponse:
    result = await service(request).enroll(
        identity_id, images=images.get("images", []), embeddings=[convert.embedding(e) for e in body.embeddings],
        face_mode=convert.face_mode(body.face_mode), display_name=body.display_name, metadata=body.metadata)
    return JSONResponse(convert.enroll(result))


@router.post("/identities", response_model=schemas.EnrollResponse, operation_id="enroll",
             openapi_extra=body_doc(schemas.EnrollRequest, ("images",)),
             summary="Enrol: add faces to an identity, created if new")
async def enroll(request: Request):
    body, images = await parse(request, schemas.EnrollRequest, ("images",), max_files(request))
    return await _enroll(request, body.identity_id, body, images)


@router.get("/identities", response_model=schemas.ListIdentitiesResponse, operation_id="list_identities",
            summary="Identities in creation order, a page at a time")
async def list_identities(request: Request, page_size: int = Query(0, ge=0, le=schemas.UINT32),
                          page_token: str = Query("", max_length=1024)):
    page, token = await service(request).list_identities(page_size, page_token)
    return JSONResponse({"identities": [convert.identity(i) for i in page], "next_page_token": token})


@router.get("/identities/{identity_id}", response_model=schemas.Identity, operation_id="get_identity",
            summary="One identity and its face ids")
async def get_identity(request: Request, identity_id: str):
    return JSONResponse(convert.identity(await service(request).get_identity(identity_id)))


@router.delete("/identities/{identity_id}", response_model=schemas.DeleteIdentityResponse,
               operation_id="delete_identity", summary="Delete an identity and its faces")
async def delete_identity(request: Request, identity_id: str):
    return JSONResponse({"faces_deleted": await service(request).delete_identity(identity_id)})


@router.post("/identities/{identity_id}/faces", response_model=schemas.EnrollResponse, operation_id="add_faces",
             openapi_extra=body_doc(schemas.AddFacesRequest, ("images",)),
             summary="Add faces to an identity (created if new)")
async def add_faces(request: Request, identity_id: str):
    body, images = await parse(request, schemas.AddFacesRequest, ("images",), max_files(request))
    return await _enroll(request, identity_id, body, images)


@router.delete("/faces/{face_id}", response_model=schemas.DeleteFaceResponse, operation_id="delete_face",
               summary="Delete one face")
async def delete_face(request: Request, face_id: str):
    await service(request).delete_face(face_id)
    return JSONResponse({})


@router.get("/info", response_model=schemas.Info, operation_id="get_info",
            summary="Model, cutoff and where it comes from, counts, index type, version")
async def info(request: Request):
    return JSONResponse(convert.info(await service(request).info()))


@router.post("/calibrate", response_model=schemas.CalibrateResponse, operation_id="calibrate",
             summary="Fit the default cutoff to the enrolled faces for a target FPIR or FNIR")
async def calibrate(request: Request, body: schemas.CalibrateRequest):
    result = await service(request).calibrate(body.target_fpir, body.target_fnir, body.apply)
    return JSONResponse(convert.calibration(result))
