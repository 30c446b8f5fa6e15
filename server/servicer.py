"""The FaceSearch servicer (grpc.aio): validation, batching, and the gallery."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import unicodedata

import grpc
import numpy as np

from facesearch import __version__
from facesearch.embedder import Embedder, Face
from facesearch.embedder.distances import MAX_DISTANCE
from facesearch.embedder.images import encode_jpeg
from facesearch.gallery import Calibration, Enrolment, Gallery, Match, NewFace
from facesearch.gallery.calibration import effective_cutoff
from facesearch.v1 import facesearch_pb2 as pb
from facesearch.v1 import facesearch_pb2_grpc as pb_grpc

from .batcher import MicroBatcher
from .config import ServerConfig
from .errors import RequestError, invalid, status_of
from .faces import FacePool
from .metrics import Metrics

log = logging.getLogger("facesearch.server")
STREAM_WINDOW = 8   # IdentifyStream requests in flight at once


def rpc(method):
    """Maps domain errors to status codes, and records metrics and one log line per call."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self, request, context):
        start, peer = time.perf_counter(), context.peer()  # before any cancel (see IdentifyStream)
        code = grpc.StatusCode.OK
        try:
            if not self.ready.is_set():
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(code, "the server is loading its model and gallery; retry shortly")
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
            code = known
            await context.abort(code, str(exc))
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.observe(name, code, elapsed)
            log.info("rpc", extra={"rpc": name, "code": code.name, "ms": round(elapsed * 1000, 2),
                                   "peer": peer})

    return wrapper


class FaceSearchServicer(pb_grpc.FaceSearchServicer):
    def __init__(self, config: ServerConfig, metrics: Metrics):
        self.config = config
        self.metrics = metrics
        self.ready = asyncio.Event()
        self.embedder: Embedder | None = None
        self.gallery: Gallery | None = None
        self.faces: FacePool | None = None
        self._embed_batcher: MicroBatcher | None = None
        self._search_batcher: MicroBatcher | None = None
        self._writes = None
        self._recalibration: asyncio.Future | None = None

    # -- lifecycle ------------------------------------------------------------
    def attach(self, embedder: Embedder, gallery: Gallery, faces: FacePool, writes) -> None:
        """Called once the model and gallery are loaded (in the event loop)."""
        self.embedder, self.gallery, self.faces, self._writes = embedder, gallery, faces, writes
        wait = self.config.max_wait_ms / 1000
        self._embed_batcher = MicroBatcher(embedder.embed_crops, max_batch=self.config.max_batch, max_wait_s=wait,
                                           name="embed", on_batch=lambda n: self.metrics.batch("embed", n))
        self._search_batcher = MicroBatcher(self._search_batch, max_batch=256, max_wait_s=wait, name="search",
                                            on_batch=lambda n: self.metrics.batch("search", n))
        self._embed_batcher.start()
        self._search_batcher.start()
        self.metrics.watch(lambda: self._embed_batcher.depth, lambda: self._search_batcher.depth,
                           lambda: len(self.gallery.index))
        self.ready.set()

    async def stop(self) -> None:
        for batcher in (self._embed_batcher, self._search_batcher):
            if batcher:
                await batcher.stop()

    # -- shared steps -----------------------------------------------------------
    def _search_batch(self, items: list[tuple[np.ndarray, int, float]]) -> list[list[Match]]:
        """Searches of several requests at once: widest top_k and cutoff, then each its own."""
        vectors = np.stack([v for v, _, _ in items])
        top_k = max(k for _, k, _ in items)
        cutoff = max(d for _, _, d in items)
        found = self.gallery.search(vectors, top_k=top_k, max_distance=cutoff)
        return [[m for m in matches if m.distance <= d][:k] for matches, (_, k, d) in zip(found, items)]

    async def _search(self, vectors: np.ndarray, top_k: int, max_distance: float) -> list[list[Match]]:
        return await self._search_batcher.submit([(v, top_k, max_distance) for v in vectors])

    async def _embed(self, faces: list[Face]) -> np.ndarray:
        out = await self._embed_batcher.submit([f.crop for f in faces])
        return np.asarray(out, np.float32).reshape(len(faces), self.embedder.dimension)

    def _cutoff(self, requested: float) -> float:
        if requested < 0 or not np.isfinite(requested):
            raise invalid(f"max_distance {requested} must be between 0 and {MAX_DISTANCE} (0: the default)")
        if requested > MAX_DISTANCE:
            raise invalid(f"max_distance {requested} is over {MAX_DISTANCE}, the largest distance there is")
        return self._default_cutoff(requested)[0]

    def _default_cutoff(self, requested: float = 0.0) -> tuple[float, str]:
        return effective_cutoff(requested, configured=self.config.max_distance,
                                explicit=self.config.max_distance_explicit,
                                calibrated=self.gallery.calibrated_cutoff())

    def _top_k(self, requested: int) -> int:
        if requested > self.config.max_top_k:
            raise invalid(f"top_k {requested} is over the limit of {self.config.max_top_k}")
        return requested or 1

    def _vector(self, embedding: pb.Embedding) -> np.ndarray:
        self.gallery.check_model(embedding.model_id or None)
        values = np.asarray(embedding.values, np.float32)
        if values.shape != (self.embedder.dimension,):
            raise invalid(f"embedding has {values.size} values; model {self.embedder.model_id} "
                          f"needs {self.embedder.dimension}")
        if not np.all(np.isfinite(values)):
            raise invalid("embedding holds NaN or infinite values")
        if not np.any(values):
            raise invalid("embedding is all zeros")
        return values / np.linalg.norm(values)

    async def _query_faces(self, request) -> tuple[list[Face | None], np.ndarray]:
        """Faces (None for an embedding query) and their vectors for Identify/Verify."""
        which = request.WhichOneof("query")
        if which == "embedding":
            return [None], self._vector(request.embedding)[None]
        if which != "image":
            raise invalid("set either image or embedding")
        max_faces = getattr(request, "max_faces", 0)
        faces, _shape = await self.faces.faces(request.image, request.face_mode, max_faces)
        return faces, await self._embed(faces) if faces else np.zeros((0, self.embedder.dimension), np.float32)

    # -- RPCs -----------------------------------------------------------------------
    @rpc
    async def Identify(self, request, context):
        return await self._identify(request)

    async def _identify(self, request) -> pb.IdentifyResponse:
        top_k, cutoff = self._top_k(request.top_k), self._cutoff(request.max_distance)
        faces, vectors = await self._query_faces(request)
        found = await self._search(vectors, top_k, cutoff) if len(vectors) else []
        return pb.IdentifyResponse(model_id=self.embedder.model_id, faces=[
            pb.FaceResult(box=_box(face), detection_score=face.score if face else 0.0, known=bool(matches),
                          matches=[_match(m) for m in matches])
            for face, matches in zip(faces, found)])

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
            if not self.ready.is_set():
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(code, "the server is loading its model and gallery; retry shortly")
            while (task := await pending.get()) is not None:
                try:
                    response = await task
                except Exception as exc:
                    known = status_of(exc)
                    if known is None:
                        log.exception("unexpected error in IdentifyStream")
                    code = known or grpc.StatusCode.INTERNAL
                    await context.abort(code, f"request {count}: {exc}")
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
        identity_id = _check_identity_id(request.identity_id)
        n_total = len(request.images) + len(request.embeddings)
        if n_total == 0:
            raise invalid("nothing to enrol: send images or embeddings")
        if n_total > self.config.max_enroll_images:
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{n_total} faces in one Enroll; the limit is {self.config.max_enroll_images}, "
                               "so split it into several calls")
        vectors = [self._vector(e) for e in request.embeddings]  # bad embeddings fail the whole call
        rejected, warnings, new_faces = [], [], []

        async def one(i: int, data: bytes):
            try:
                face, found = await self.faces.primary(data, request.face_mode)
            except Exception as exc:
                if status_of(exc) is None:
                    raise
                return i, None, 0, str(exc), None
            return i, face, found, None, data

        # The same image bytes twice for one identity are enrolled once: re-running an import is harmless.
        digests = [hashlib.sha256(d).hexdigest() for d in request.images]
        loop = asyncio.get_running_loop()
        known = await loop.run_in_executor(None, self.gallery.existing_sources, identity_id, digests)
        duplicates, fresh, seen = [], [], set(known)
        for i, digest in enumerate(digests):
            if digest in seen:
                duplicates.append(i)
            else:
                seen.add(digest)
                fresh.append(i)
        results = await asyncio.gather(*(one(i, request.images[i]) for i in fresh))
        kept = []
        for i, face, found, error, data in results:
            if error:
                rejected.append(pb.Rejected(index=i, reason=error))
            elif face is None:
                rejected.append(pb.Rejected(index=i, reason="no face found in the image"))
            else:
                if found > 1:
                    warnings.append(pb.EnrollWarning(index=i, message=(
                        f"{found} faces found; enrolled the largest, most central one at "
                        f"x={face.box.x} y={face.box.y} {face.box.width}x{face.box.height}")))
                kept.append((face, data))
        embedded = await self._embed([f for f, _ in kept]) if kept else []
        for (face, data), vec in zip(kept, embedded):
            b = face.box
            new_faces.append(NewFace(vec, source_sha256=hashlib.sha256(data).hexdigest(), box=(b.x, b.y, b.width, b.height),
                                     detection_score=face.score, crop_jpeg=encode_jpeg(face.crop)))
        new_faces += [NewFace(v) for v in vectors]  # embeddings count after the images
        display = request.display_name or None
        metadata = dict(request.metadata) or None
        if not new_faces:  # every image was rejected: nothing is created or changed
            return pb.EnrollResponse(identity_id=identity_id, created=False, rejected=rejected, warnings=warnings,
                                     duplicates=duplicates)
        (result,) = await self._write(self.gallery.add_batch, [Enrolment(identity_id, new_faces, display, metadata)],
                                      model_id=self.embedder.model_id)
        return pb.EnrollResponse(identity_id=identity_id, created=result.created,
                                 face_ids=[str(i) for i in result.face_ids], rejected=rejected, warnings=warnings,
                                 duplicates=duplicates)

    async def _write(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._writes, functools.partial(fn, *args, **kwargs))
        if self.gallery.changes_since_snapshot >= self.config.snapshot_every:
            await loop.run_in_executor(self._writes, self.gallery.snapshot)
        self._maybe_recalibrate()
        return result

    def _maybe_recalibrate(self) -> None:
        """--recalibrate-every N: one background Calibrate at a time, with the last targets."""
        if self.config.recalibrate_every and (self._recalibration is None or self._recalibration.done()):
            self._recalibration = asyncio.get_running_loop().run_in_executor(
                None, self.gallery.recalibrate_if_due, self.config.recalibrate_every)

    @rpc
    async def Verify(self, request, context):
        identity_id = _check_identity_id(request.identity_id)
        cutoff = self._cutoff(request.max_distance)
        if request.WhichOneof("query") == "image":
            face, _found = await self.faces.primary(request.image, request.face_mode)
            if face is None:
                return pb.VerifyResponse(match=False, distance=MAX_DISTANCE, face_found=False)
            vector = (await self._embed([face]))[0]
        else:
            _faces, vectors = await self._query_faces(request)
            vector = vectors[0]
        loop = asyncio.get_running_loop()
        best = await loop.run_in_executor(None, self.gallery.verify, vector, identity_id)
        return pb.VerifyResponse(match=best.distance <= cutoff, distance=best.distance, face_id=str(best.face_id),
                                 face_found=True)

    @rpc
    async def Embed(self, request, context):
        faces, _shape = await self.faces.faces(request.image, request.face_mode, request.max_faces)
        vectors = await self._embed(faces) if faces else []
        model_id = self.embedder.model_id
        return pb.EmbedResponse(faces=[
            pb.FaceEmbedding(box=_box(f), detection_score=f.score,
                             embedding=pb.Embedding(values=v.tolist(), model_id=model_id))
            for f, v in zip(faces, vectors)])

    @rpc
    async def GetIdentity(self, request, context):
        loop = asyncio.get_running_loop()
        return _identity(await loop.run_in_executor(None, self.gallery.get_identity, request.identity_id))

    @rpc
    async def ListIdentities(self, request, context):
        if request.page_size > 1000:
            raise invalid(f"page_size {request.page_size} is over the limit of 1000")
        loop = asyncio.get_running_loop()
        page, token = await loop.run_in_executor(None, self.gallery.list_identities, request.page_size or 100,
                                                 request.page_token)
        return pb.ListIdentitiesResponse(identities=[_identity(i) for i in page], next_page_token=token)

    @rpc
    async def DeleteIdentity(self, request, context):
        return pb.DeleteIdentityResponse(faces_deleted=await self._write(self.gallery.delete_identity,
                                                                         request.identity_id))

    @rpc
    async def DeleteFace(self, request, context):
        try:
            face_id = int(request.face_id)
        except ValueError:
            raise invalid(f"face_id {request.face_id!r} is not a face id this service issued") from None
        await self._write(self.gallery.delete_face, face_id)
        return pb.DeleteFaceResponse()

    @rpc
    async def GetInfo(self, request, context):
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, self.gallery.info)
        status = await loop.run_in_executor(None, self.gallery.calibration_status)
        cutoff, source = self._default_cutoff()
        return pb.Info(model_id=info.model_id, dimension=info.dimension,
                       default_max_distance=cutoff, identity_count=info.identity_count,
                       face_count=info.face_count, index_type=info.index_type, version=__version__,
                       default_max_distance_source=_SOURCES[source],
                       calibration_stale=bool(status and status.stale),
                       changes_since_calibration=status.changes_since if status else 0,
                       calibrated_at=status.calibrated_at.timestamp() if status else 0.0)

    @rpc
    async def Calibrate(self, request, context):
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, functools.partial(
            self.gallery.calibrate, request.target_fpir, request.target_fnir, request.apply))
        return _calibration(result, request.apply)


def _check_identity_id(identity_id: str) -> str:
    if not identity_id:
        raise invalid("identity_id is empty")
    if len(identity_id) > 255:
        raise invalid(f"identity_id is {len(identity_id)} characters; at most 255")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in identity_id):
        raise invalid("identity_id contains control characters")
    return identity_id


def _box(face: Face | None) -> pb.BoundingBox | None:
    if face is None:
        return None
    b = face.box
    return pb.BoundingBox(x=b.x, y=b.y, width=b.width, height=b.height)


def _match(m: Match) -> pb.Match:
    return pb.Match(identity_id=m.identity_id, display_name=m.display_name, distance=m.distance,
                    face_id=str(m.face_id))


_SOURCES = {"configured": pb.CUTOFF_SOURCE_CONFIGURED, "calibrated": pb.CUTOFF_SOURCE_CALIBRATED,
            "default": pb.CUTOFF_SOURCE_DEFAULT}


def _calibration(c: Calibration, applied: bool) -> pb.CalibrateResponse:
    return pb.CalibrateResponse(max_distance=c.max_distance, expected_fpir=c.expected_fpir,
                                expected_fnir=c.expected_fnir, identities=c.identities,
                                genuine_comparisons=c.genuine_comparisons,
                                impostor_comparisons=c.impostor_comparisons, applied=applied, faces=c.faces,
                                sampled=c.sampled)


def _identity(i) -> pb.Identity:
    return pb.Identity(identity_id=i.identity_id, display_name=i.display_name,
                       metadata={str(k): str(v) for k, v in (i.metadata or {}).items()},
                       face_count=i.face_count, face_ids=[str(f) for f in i.face_ids])
