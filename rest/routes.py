"""The /v1 endpoints (docs/api.md): each converts its body to one FaceSearchService call and the
result to JSON; errors go through errors.py. No logic of their own."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

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
                                             face_mode=convert.face_mode(body.face_mode), max_faces=body.max_faces,
                                             source=body.source)
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
                          page_token: str = Query("", max_length=1024),
                          prefix: str = Query("", max_length=1024, description="identity_id or display_name starts "
                                                                               "with it (case-sensitive)")):
    page, token = await service(request).list_identities(page_size, page_token, prefix)
    return JSONResponse({"identities": [convert.identity(i) for i in page], "next_page_token": token})


@router.get("/identities/{identity_id}", response_model=schemas.Identity, operation_id="get_identity",
            summary="One identity and its face ids")
async def get_identity(request: Request, identity_id: str):
    return JSONResponse(convert.identity(await service(request).get_identity(identity_id)))


@router.patch("/identities/{identity_id}", response_model=schemas.Identity, operation_id="update_identity",
              summary="Rename, or change the metadata: the fields given are set, null or empty clears")
async def update_identity(request: Request, identity_id: str, body: schemas.UpdateIdentityRequest):
    mask = sorted(body.model_fields_set)
    changed = await service(request).update_identity(identity_id, display_name=body.display_name,
                                                     metadata=body.metadata, update_mask=mask)
    return JSONResponse(convert.identity(changed))


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


@router.get("/identities/{identity_id}/faces", response_model=schemas.ListFacesResponse, operation_id="list_faces",
            summary="An identity's faces in enrolment order, a page at a time")
async def list_faces(request: Request, identity_id: str, page_size: int = Query(0, ge=0, le=schemas.UINT32),
                     page_token: str = Query("", max_length=1024)):
    page, token = await service(request).list_faces(identity_id, page_size, page_token)
    return JSONResponse({"faces": [convert.face(f) for f in page], "next_page_token": token})


@router.post("/identities/{identity_id}:merge", response_model=schemas.MovedResponse, operation_id="merge_identities",
             summary="Move every face of the source identities to this one, and delete the sources")
async def merge_identities(request: Request, identity_id: str, body: schemas.MergeIdentitiesRequest):
    return JSONResponse({"faces_moved": await service(request).merge_identities(body.source_ids, identity_id)})


@router.post("/faces:move", response_model=schemas.MovedResponse, operation_id="move_faces",
             summary="Move faces to another identity (a face enrolled under the wrong person)")
async def move_faces(request: Request, body: schemas.MoveFacesRequest):
    moved = await service(request).move_faces(body.face_ids, body.target_identity_id,
                                              create_if_missing=body.create_if_missing)
    return JSONResponse({"faces_moved": moved})


@router.get("/faces/{face_id}", response_model=schemas.Face, operation_id="get_face", summary="One face, no embedding")
async def get_face(request: Request, face_id: str):
    return JSONResponse(convert.face(await service(request).get_face(face_id)))


@router.get("/faces/{face_id}/image", operation_id="get_face_image", summary="The face's stored crop",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}})
async def get_face_image(request: Request, face_id: str):
    return Response(await service(request).face_image(face_id), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


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


# -- unknown faces (--keep-unknown-days; README "Unknown visitors") ----------------------------------
@router.get("/unknown/clusters", response_model=schemas.ListUnknownClustersResponse,
            operation_id="list_unknown_clusters", summary="Clusters of faces Identify answered as unknown, "
                                                          "largest first, a page at a time")
async def list_unknown_clusters(request: Request, page_size: int = Query(0, ge=0, le=schemas.UINT32),
                                page_token: str = Query("", max_length=1024)):
    return JSONResponse(convert.unknown_page(await service(request).list_unknown_clusters(page_size, page_token)))


@router.get("/unknown/faces/{face_id}/image", operation_id="get_unknown_face_image",
            summary="An unknown face's crop", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}})
async def get_unknown_face_image(request: Request, face_id: str):
    return Response(await service(request).unknown_face_image(face_id), media_type="image/jpeg",
                    headers={"Cache-Control": "private, no-store"})


@router.post("/unknown/clusters/{cluster_id}:enroll", response_model=schemas.EnrollResponse,
             operation_id="enroll_unknown_cluster",
             summary="Enrol a cluster's faces as an identity (created if new); they leave the unknown faces")
async def enroll_unknown_cluster(request: Request, cluster_id: str, body: schemas.EnrollUnknownClusterRequest):
    result = await service(request).enroll_unknown_cluster(cluster_id, body.identity_id,
                                                           display_name=body.display_name)
    return JSONResponse(convert.enroll(result))


@router.delete("/unknown/clusters/{cluster_id}", response_model=schemas.DeleteUnknownResponse,
               operation_id="delete_unknown_cluster", summary="Forget one cluster's faces")
async def delete_unknown_cluster(request: Request, cluster_id: str):
    return JSONResponse({"faces_deleted": await service(request).delete_unknown(cluster_id)})


@router.delete("/unknown/clusters", response_model=schemas.DeleteUnknownResponse, operation_id="delete_unknown",
               summary="Forget every unknown face")
async def delete_unknown(request: Request):
    return JSONResponse({"faces_deleted": await service(request).delete_unknown(all_faces=True)})
