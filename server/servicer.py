"""The FaceSearch gRPC servicer: proto in, a FaceSearchService call, proto or status code out."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import grpc

from facesearch.service import (
    CalibrateResult,
    EmbeddingInput,
    EnrollResult,
    FaceMatches,
    FaceRecord,
    FaceSearchService,
    Identity,
    Match,
    ServiceInfo,
    UnknownCluster,
)
from facesearch.v1 import facesearch_pb2 as pb
from facesearch.v1 import facesearch_pb2_grpc as pb_grpc

from .errors import status_of
from .metrics import Metrics

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger("facesearch.server")
STREAM_WINDOW = 8   # IdentifyStream requests in flight at once
LOADING = "the server is loading its model and gallery; retry shortly"


def rpc(method):
    """Maps service errors to status codes, and records metrics and one log line per call."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self, request, context):
        start, peer = time.perf_counter(), context.peer()  # before any cancel (see IdentifyStream)
        code = grpc.StatusCode.OK
        try:
            if self.service is None:
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(code, LOADING)
            return await method(self, request, context)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            known = status_of(exc)
            if known is None:
                if context.code() not in (None, grpc.StatusCode.OK):  # context.abort() was called
                    code = context.code()
                    raise
                code = grpc.StatusCode.INTERNAL
                log.exception("unexpected error in %s", name)
                await context.abort(code, f"internal error ({type(exc).__name__}); see the server log")
            code, message = known
            await context.abort(code, message)
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.observe(name, code, elapsed)
            log.info("rpc", extra={"rpc": name, "code": code.name, "ms": round(elapsed * 1000, 2), "peer": peer})

    return wrapper


class FaceSearchServicer(pb_grpc.FaceSearchServicer):
    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.service: FaceSearchService | None = None   # set once the model and gallery are loaded

    def attach(self, service: FaceSearchService) -> None:
        self.service = service

    @rpc
    async def Identify(self, request, context):
        return await self._identify(request)

    async def _identify(self, request) -> pb.IdentifyResponse:
        result = await self.service.identify(_query(request), top_k=request.top_k, max_distance=request.max_distance,
                                             face_mode=request.face_mode, max_faces=request.max_faces,
                                             source=request.source)
        return pb.IdentifyResponse(model_id=result.model_id, faces=[_face_result(f) for f in result.faces])

    async def IdentifyStream(self, request_iterator, context):
        """Responses come in request order; at most STREAM_WINDOW requests are in flight."""
        start, count, code = time.perf_counter(), 0, grpc.StatusCode.OK
        peer = context.peer()  # read now: after a cancel, peer() reads freed memory (grpc/grpc#29927)
        pending: asyncio.Queue = asyncio.Queue(STREAM_WINDOW)

        async def read():
            try:
                async for request in request_iterator:
                    await pending.put(asyncio.ensure_future(self._identify(request)))
            finally:
                await pending.put(None)

        reader = asyncio.ensure_future(read())
        try:
            if self.service is None:
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(code, LOADING)
            while (task := await pending.get()) is not None:
                try:
                    response = await task
                except Exception as exc:
                    known = status_of(exc)
                    if known is None:
                        log.exception("unexpected error in IdentifyStream")
                        code, message = grpc.StatusCode.INTERNAL, "internal error; see the server log"
                    else:
                        code, message = known
                    await context.abort(code, f"request {count}: {message}")
                count += 1
                yield response
            await reader
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            reader.cancel()
            while not pending.empty():
                task = pending.get_nowait()
                if task is not None:
                    task.cancel()
            elapsed = time.perf_counter() - start
            self.metrics.observe("IdentifyStream", code, elapsed)
            log.info("rpc", extra={"rpc": "IdentifyStream", "code": code.name, "ms": round(elapsed * 1000, 2),
                                   "responses": count, "peer": peer})

    @rpc
    async def Enroll(self, request, context):
        r = await self.service.enroll(
            request.identity_id, images=list(request.images), embeddings=[_embedding(e) for e in request.embeddings],
            face_mode=request.face_mode, display_name=request.display_name, metadata=dict(request.metadata))
        return _enrolled(r)

    @rpc
    async def Verify(self, request, context):
        r = await self.service.verify(_query(request), request.identity_id, max_distance=request.max_distance,
                                      face_mode=request.face_mode)
        return pb.VerifyResponse(match=r.match, distance=r.distance, face_id=_id(r.face_id), face_found=r.face_found)

    @rpc
    async def Embed(self, request, context):
        r = await self.service.embed(request.image, face_mode=request.face_mode, max_faces=request.max_faces)
        return pb.EmbedResponse(faces=[
            pb.FaceEmbedding(box=_box(f.box), detection_score=f.detection_score,
                             embedding=pb.Embedding(values=f.vector.tolist(), model_id=r.model_id))
            for f in r.faces])

    @rpc
    async def GetIdentity(self, request, context):
        return _identity(await self.service.get_identity(request.identity_id))

    @rpc
    async def ListIdentities(self, request, context):
        page, token = await self.service.list_identities(request.page_size, request.page_token, request.prefix)
        return pb.ListIdentitiesResponse(identities=[_identity(i) for i in page], next_page_token=token)

    @rpc
    async def DeleteIdentity(self, request, context):
        return pb.DeleteIdentityResponse(faces_deleted=await self.service.delete_identity(request.identity_id))

    @rpc
    async def DeleteFace(self, request, context):
        await self.service.delete_face(request.face_id)
        return pb.DeleteFaceResponse()

    # -- admin ------------------------------------------------------------------------------------
    @rpc
    async def UpdateIdentity(self, request: pb.UpdateIdentityRequest, context: Context) -> pb.Identity:
        """Without a mask proto3 cannot tell unset from empty: the non-empty fields are set."""
        paths = list(request.update_mask.paths)
        return _identity(await self.service.update_identity(
            request.identity_id, display_name=request.display_name if paths else request.display_name or None,
            metadata=dict(request.metadata) if paths else dict(request.metadata) or None, update_mask=paths))

    @rpc
    async def MergeIdentities(self, request: pb.MergeIdentitiesRequest,
                              context: Context) -> pb.MergeIdentitiesResponse:
        moved = await self.service.merge_identities(list(request.source_ids), request.target_id)
        return pb.MergeIdentitiesResponse(faces_moved=moved)

    @rpc
    async def MoveFaces(self, request: pb.MoveFacesRequest, context: Context) -> pb.MoveFacesResponse:
        moved = await self.service.move_faces(list(request.face_ids), request.target_identity_id,
                                              create_if_missing=request.create_if_missing)
        return pb.MoveFacesResponse(faces_moved=moved)

    @rpc
    async def ListFaces(self, request: pb.ListFacesRequest, context: Context) -> pb.ListFacesResponse:
        page, token = await self.service.list_faces(request.identity_id, request.page_size, request.page_token)
        return pb.ListFacesResponse(faces=[_face(f) for f in page], next_page_token=token)

    @rpc
    async def GetFaceImage(self, request: pb.GetFaceImageRequest, context: Context) -> pb.FaceImage:
        return pb.FaceImage(jpeg=await self.service.face_image(request.face_id))

    # -- unknown faces (--keep-unknown-days) ------------------------------------------------------
    @rpc
    async def ListUnknownClusters(self, request: pb.ListUnknownClustersRequest,
                                  context: Context) -> pb.ListUnknownClustersResponse:
        page = await self.service.list_unknown_clusters(request.page_size, request.page_token)
        return pb.ListUnknownClustersResponse(clusters=[_unknown_cluster(c) for c in page.clusters],
                                              next_page_token=page.next_page_token, waiting_faces=page.waiting,
                                              total_faces=page.total)

    @rpc
    async def GetUnknownFaceImage(self, request: pb.GetUnknownFaceImageRequest, context: Context) -> pb.FaceImage:
        return pb.FaceImage(jpeg=await self.service.unknown_face_image(request.face_id))

    @rpc
    async def EnrollUnknownCluster(self, request: pb.EnrollUnknownClusterRequest,
                                   context: Context) -> pb.EnrollResponse:
        return _enrolled(await self.service.enroll_unknown_cluster(request.cluster_id, request.identity_id,
                                                                   display_name=request.display_name))

    @rpc
    async def DeleteUnknown(self, request: pb.DeleteUnknownRequest, context: Context) -> pb.DeleteUnknownResponse:
        return pb.DeleteUnknownResponse(faces_deleted=await self.service.delete_unknown(request.cluster_id,
                                                                                         all_faces=request.all))

    @rpc
    async def GetInfo(self, request, context):
        return _info(await self.service.info())

    @rpc
    async def Calibrate(self, request, context):
        return _calibration(await self.service.calibrate(request.target_fpir, request.target_fnir, request.apply))


# -- proto <-> service ---------------------------------------------------------------------------
def _embedding(e: pb.Embedding) -> EmbeddingInput:
    return EmbeddingInput(list(e.values), e.model_id or None)


def _query(request) -> bytes | EmbeddingInput | None:
    which = request.WhichOneof("query")
    if which == "image":
        return request.image
    return _embedding(request.embedding) if which == "embedding" else None


def _id(n: int | None) -> str:
    return "" if n is None else str(n)


def _box(b) -> pb.BoundingBox | None:
    return None if b is None else pb.BoundingBox(x=b.x, y=b.y, width=b.width, height=b.height)


def _match(m: Match) -> pb.Match:
    return pb.Match(identity_id=m.identity_id, display_name=m.display_name, distance=m.distance,
                    face_id=str(m.face_id))


def _face_result(f: FaceMatches) -> pb.FaceResult:
    return pb.FaceResult(box=_box(f.box), detection_score=f.detection_score, known=f.known,
                         matches=[_match(m) for m in f.matches])


def _identity(i: Identity) -> pb.Identity:
    return pb.Identity(identity_id=i.identity_id, display_name=i.display_name,
                       metadata={str(k): str(v) for k, v in (i.metadata or {}).items()},
                       face_count=i.face_count, face_ids=[str(f) for f in i.face_ids])


def _enrolled(r: EnrollResult) -> pb.EnrollResponse:
    return pb.EnrollResponse(
        identity_id=r.identity_id, created=r.created, face_ids=[str(i) for i in r.face_ids],
        rejected=[pb.Rejected(index=x.index, reason=x.reason) for x in r.rejected],
        warnings=[pb.EnrollWarning(index=x.index, message=x.reason) for x in r.warnings],
        duplicates=r.duplicates)


def _unknown_cluster(c: UnknownCluster) -> pb.UnknownCluster:
    return pb.UnknownCluster(cluster_id=str(c.cluster_id), size=c.size, first_seen=c.first_seen,
                             last_seen=c.last_seen, sample_face_ids=[str(i) for i in c.sample_face_ids],
                             sources=c.sources)


def _face(f: FaceRecord) -> pb.Face:
    return pb.Face(face_id=f.face_id, identity_id=f.identity_id, model_id=f.model_id, box=_box(f.box),
                   detection_score=f.detection_score, source_sha256=f.source_sha256, source_path=f.source_path,
                   created_at=f.created_at, has_image=f.has_image)


_SOURCES = {"configured": pb.CUTOFF_SOURCE_CONFIGURED, "calibrated": pb.CUTOFF_SOURCE_CALIBRATED,
            "default": pb.CUTOFF_SOURCE_DEFAULT}


def _info(i: ServiceInfo) -> pb.Info:
    return pb.Info(model_id=i.model_id, dimension=i.dimension, default_max_distance=i.default_max_distance,
                   identity_count=i.identity_count, face_count=i.face_count, index_type=i.index_type,
                   version=i.version, default_max_distance_source=_SOURCES[i.default_max_distance_source],
                   calibration_stale=i.calibration_stale, changes_since_calibration=i.changes_since_calibration,
                   calibrated_at=i.calibrated_at, keep_unknown_days=i.keep_unknown_days)


def _calibration(r: CalibrateResult) -> pb.CalibrateResponse:
    c = r.calibration
    return pb.CalibrateResponse(max_distance=c.max_distance, expected_fpir=c.expected_fpir,
                                expected_fnir=c.expected_fnir, identities=c.identities,
                                genuine_comparisons=c.genuine_comparisons,
                                impostor_comparisons=c.impostor_comparisons, applied=r.applied, faces=c.faces,
                                sampled=c.sampled)
