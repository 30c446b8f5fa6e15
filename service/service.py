"""FaceSearchService: the use cases, in plain async Python.

Transports (the gRPC servicer; a REST gateway would be the same) convert their
messages to these calls and map ServiceError kinds to their status codes; no
logic of their own. Compute runs in the Runtime: detection threads, micro-batched
embeddings and searches, one gallery writer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, ParamSpec, Sequence, TypeVar

import numpy as np

from facesearch import __version__
from facesearch.embedder import Embedder, FaceMode
from facesearch.embedder.distances import DEFAULT_CUTOFF, MAX_DISTANCE
from facesearch.embedder.images import DEFAULT_MAX_REQUEST_PIXELS, header_pixels
from facesearch.embedder.prepare import sha256_of
from facesearch.embedder.detect import Face
from facesearch.gallery import Calibration, Enrolment, Gallery, Identity, Metadata, NewFace, UnknownPage
from facesearch.gallery.calibration import effective_cutoff

from . import validate
from .enrolment import Candidate, Dedupe, new_face, warning
from .errors import InvalidArgument, ResourceExhausted, translated
from .results import (
    CalibrateResult,
    EmbeddedFace,
    EmbedResult,
    EnrollResult,
    FaceMatches,
    FaceRecord,
    IdentifyResult,
    Rejection,
    ServiceInfo,
    VerifyResult,
)
from .runtime import Runtime
from .unknown import UnknownKeeper
from .validate import EmbeddingInput

Query = bytes | EmbeddingInput   # an encoded image, or an embedding
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Limits:
    max_distance: float = DEFAULT_CUTOFF   # the configured cutoff
    max_distance_explicit: bool = False    # set by the operator: it wins over a calibrated cutoff
    max_top_k: int = 1000
    max_enroll_images: int = 256
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS  # all images of a request together, from their headers
    recalibrate_every: int = 0             # faces enrolled or deleted before a background Calibrate (0: never)


class FaceSearchService:
    def __init__(self, embedder: Embedder, gallery: Gallery, runtime: Runtime, limits: Limits = Limits(),
                 unknown: UnknownKeeper | None = None):
        """unknown: keeps the faces Identify answers as unknown (--keep-unknown-days); None keeps nothing."""
        self.embedder, self.gallery, self.runtime, self.limits = embedder, gallery, runtime, limits
        self.unknown = unknown
        self._recalibration: asyncio.Task[Calibration | None] | None = None

    def default_cutoff(self, requested: float = 0.0) -> tuple[float, str]:
        """The cutoff a search uses and where it comes from (gallery.calibration.effective_cutoff)."""
        return effective_cutoff(requested, configured=self.limits.max_distance,
                                explicit=self.limits.max_distance_explicit,
                                calibrated=self.gallery.calibrated_cutoff())

    def _cutoff(self, requested: float) -> float:
        return self.default_cutoff(validate.cutoff(requested, 0.0))[0]

    async def _written(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """A gallery write, then (--recalibrate-every) one background Calibrate at a time if due."""
        result = await self.runtime.write(fn, *args, **kwargs)
        every = self.limits.recalibrate_every
        if every and (self._recalibration is None or self._recalibration.done()):
            self._recalibration = asyncio.ensure_future(self.runtime.calibrate(self.gallery.recalibrate_if_due, every))
        return result

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def _model_of(self, query: Query) -> str | None:
        """The model that embedded a query: the embedder's for an image, the caller's for an embedding."""
        return (query.model_id or None) if isinstance(query, EmbeddingInput) else self.model_id

    async def _query(self, query: Query, mode: FaceMode, max_faces: int = 0) -> tuple[list[Face | None], np.ndarray]:
        """(faces, vectors) of a query; faces are None for an embedding."""
        if isinstance(query, EmbeddingInput):
            return [None], validate.vector(query, self.gallery)[None]
        if not isinstance(query, bytes):
            raise InvalidArgument("set either image or embedding")
        faces = await self.runtime.faces.faces(query, validate.face_mode(mode), max_faces)
        if not faces:
            return [], np.zeros((0, self.embedder.dimension), np.float32)
        return list(faces), await self.runtime.embed([f.crop for f in faces])

    @translated
    async def identify(self, query: Query, *, top_k: int = 0, max_distance: float = 0.0,
                       face_mode: FaceMode = FaceMode.DETECT, max_faces: int = 0, source: str = "") -> IdentifyResult:
        """Every face in the query with its nearest identities within the cutoff. With retention on
        (--keep-unknown-days), each face of an image that matched nobody is queued to be kept, with
        `source` (e.g. a camera's name)."""
        top_k = validate.top_k(top_k, self.limits.max_top_k)
        cutoff = self._cutoff(max_distance)
        source = validate.source(source)
        faces, vectors = await self._query(query, face_mode, max_faces)
        found = await self.runtime.search(vectors, top_k, cutoff, self._model_of(query)) if len(vectors) else []
        if self.unknown is not None:
            for f, v, matches in zip(faces, vectors, found):
                if f is not None and not matches:   # an image's face only: an embedding has no crop to show
                    self.unknown.offer(f.crop, v, source)
        return IdentifyResult([FaceMatches(f.box if f else None, f.score if f else 0.0, matches)
                               for f, matches in zip(faces, found)], self.model_id)

    @translated
    async def enroll(self, identity_id: str, *, images: Sequence[bytes] = (), embeddings: Sequence[EmbeddingInput] = (),
                     face_mode: FaceMode = FaceMode.DETECT, display_name: str = "",
                     metadata: Metadata | None = None) -> EnrollResult:
        """Add faces to an identity (created if new): one face per image, then the embeddings.

        Images that fail are rejected one by one; a bad embedding fails the call.
        """
        validate.check_identity_id(identity_id)
        validate.profile(display_name, metadata)
        mode = validate.face_mode(face_mode)
        total = len(images) + len(embeddings)
        if total == 0:
            raise InvalidArgument("nothing to enrol: send images or embeddings")
        if total > self.limits.max_enroll_images:
            raise ResourceExhausted(f"{total} faces in one Enroll; the limit is {self.limits.max_enroll_images}, "
                                    "so split it into several calls")
        pixels = sum(header_pixels(d) for d in images)   # headers only: nothing is decoded yet
        if pixels > self.limits.max_request_pixels:
            raise ResourceExhausted(f"the images of this Enroll are {pixels:,} pixels together; the limit is "
                                    f"{self.limits.max_request_pixels:,} (FACESEARCH_MAX_REQUEST_PIXELS), so split "
                                    "it into several calls or downscale the images")
        given = [validate.vector(e, self.gallery) for e in embeddings]
        digests = [sha256_of(d) for d in images]
        fresh = await self.runtime.read(Dedupe(self.gallery).fresh, [(identity_id, d) for d in digests])
        result = EnrollResult(identity_id, duplicates=[i for i, new in enumerate(fresh) if not new])
        todo = [i for i, new in enumerate(fresh) if new]
        prepared = await asyncio.gather(*(self.runtime.faces.prepare(images[i], mode) for i in todo))
        candidates, positions = [], []   # positions: each face's index in the request
        for i, p in zip(todo, prepared):
            if p.crop is None:
                result.rejected.append(Rejection(i, p.reason))
                continue
            if note := warning(p):
                result.warnings.append(Rejection(i, note))
            candidates.append(Candidate(identity_id, digests[i], p))
            positions.append(i)
        positions += [len(images) + j for j in range(len(given))]   # embeddings count after the images
        crops = [c.prepared.crop for c in candidates if c.prepared.crop is not None]   # the rejected ones left above
        vectors = await self.runtime.embed(crops) if crops else np.zeros((0, self.embedder.dimension), np.float32)
        faces = [new_face(c, v) for c, v in zip(candidates, vectors)] + [NewFace(v) for v in given]
        if not faces:  # every image was rejected or known: nothing is created or changed
            return result
        (added,) = await self._written(
            self.gallery.add_batch, [Enrolment(identity_id, faces, display_name or None, dict(metadata or {}) or None)],
            model_id=self.model_id)
        result.created, result.face_ids = added.created, added.face_ids
        # enforced in the write's transaction too: a racing or retried Enroll ends as a duplicate
        result.duplicates = sorted(result.duplicates + [positions[j] for j in added.duplicates])
        return result

    @translated
    async def verify(self, query: Query, identity_id: str, *, max_distance: float = 0.0,
                     face_mode: FaceMode = FaceMode.DETECT) -> VerifyResult:
        """1:1: the query's main face against the nearest face of one identity."""
        validate.check_identity_id(identity_id)
        cutoff = self._cutoff(max_distance)
        if isinstance(query, bytes):
            face = await self.runtime.faces.primary(query, validate.face_mode(face_mode))
            if face is None:
                return VerifyResult(False, MAX_DISTANCE, None, face_found=False)
            vector = (await self.runtime.embed([face.crop]))[0]
        else:
            _faces, vectors = await self._query(query, face_mode)
            vector = vectors[0]
        best = await self.runtime.read(self.gallery.verify, vector, identity_id, self._model_of(query))
        return VerifyResult(best.distance <= cutoff, best.distance, best.face_id, face_found=True)

    @translated
    async def embed(self, image: bytes, *, face_mode: FaceMode = FaceMode.DETECT, max_faces: int = 0) -> EmbedResult:
        """The faces found and their embeddings; nothing is stored."""
        if not isinstance(image, bytes):
            raise InvalidArgument("set either image or embedding")
        faces = await self.runtime.faces.faces(image, validate.face_mode(face_mode), max_faces)
        vectors = await self.runtime.embed([f.crop for f in faces]) if faces else \
            np.zeros((0, self.embedder.dimension), np.float32)
        return EmbedResult([EmbeddedFace(f.box, f.score, v) for f, v in zip(faces, vectors)], self.model_id)

    @translated
    async def get_identity(self, identity_id: str) -> Identity:
        validate.check_identity_id(identity_id)
        return await self.runtime.read(self.gallery.get_identity, identity_id)

    @translated
    async def list_identities(self, page_size: int = 0, page_token: str = "",
                              prefix: str = "") -> tuple[list[Identity], str]:
        """A page in creation order, and the token of the next page ("" at the end).
        prefix: only identities whose identity_id or display_name starts with it (case-sensitive)."""
        return await self.runtime.read(self.gallery.list_identities, validate.page_size(page_size), page_token,
                                       validate.prefix(prefix))

    # -- admin: fix enrolments (README "Managing identities") ----------------------------------------
    @translated
    async def update_identity(self, identity_id: str, *, display_name: str | None = None,
                              metadata: dict[str, str] | None = None, update_mask: Sequence[str] = ()) -> Identity:
        """Change the display name and/or metadata. update_mask paths ("display_name", "metadata") name
        the fields to set, and one given as None or empty is cleared; without a mask, the fields given
        (not None) are set. No face needed."""
        validate.check_identity_id(identity_id)
        paths = validate.update_mask(update_mask)
        if paths:
            name = (display_name or "") if "display_name" in paths else None
            meta = dict(metadata or {}) if "metadata" in paths else None
        else:
            name, meta = display_name, None if metadata is None else dict(metadata)
        validate.profile(name or "", meta)
        identity: Identity = await self._written(self.gallery.update_identity, identity_id, display_name=name,
                                                 metadata=meta)
        return identity

    @translated
    async def merge_identities(self, source_ids: Sequence[str], target_id: str) -> int:
        """Every face of the sources moves to the target, and the sources are deleted, in one transaction;
        returns how many faces moved (a face whose image the target has already is dropped, not moved)."""
        sources = validate.identity_ids(source_ids, "source_ids")
        validate.check_identity_id(target_id)
        if target_id in sources:
            raise InvalidArgument(f"target_id {target_id!r} is also one of the source_ids")
        moved: int = await self._written(self.gallery.merge_identities, sources, target_id)
        return moved

    @translated
    async def move_faces(self, face_ids: Sequence[str], target_identity_id: str, *,
                         create_if_missing: bool = False) -> int:
        """Move faces to another identity (created if missing and create_if_missing), in one transaction;
        returns how many moved (not those already there, nor those dropped as the target's duplicates)."""
        ids = validate.face_ids(face_ids)
        validate.check_identity_id(target_identity_id)
        moved: int = await self._written(self.gallery.move_faces, ids, target_identity_id,
                                         create_if_missing=create_if_missing)
        return moved

    @translated
    async def list_faces(self, identity_id: str, page_size: int = 0,
                         page_token: str = "") -> tuple[list[FaceRecord], str]:
        """A page of an identity's faces in enrolment order, and the next page's token ("" at the end)."""
        validate.check_identity_id(identity_id)
        page, token = await self.runtime.read(self.gallery.list_faces, identity_id, validate.page_size(page_size),
                                              page_token)
        return [FaceRecord.of(f) for f in page], token

    @translated
    async def get_face(self, face_id: str) -> FaceRecord:
        return FaceRecord.of(await self.runtime.read(self.gallery.get_face, validate.face_id(face_id)))

    @translated
    async def face_image(self, face_id: str) -> bytes:
        """The face's stored crop as JPEG; NotFound when the face or its crop is missing."""
        jpeg: bytes = await self.runtime.read(self.gallery.face_image, validate.face_id(face_id))
        return jpeg

    @translated
    async def delete_identity(self, identity_id: str) -> int:
        """Deletes an identity and its faces; returns how many faces went."""
        validate.check_identity_id(identity_id)
        return await self._written(self.gallery.delete_identity, identity_id)

    @translated
    async def delete_face(self, face_id: str) -> None:
        await self._written(self.gallery.delete_face, validate.face_id(face_id))

    @translated
    async def info(self) -> ServiceInfo:
        i = await self.runtime.read(self.gallery.info)
        status = await self.runtime.read(self.gallery.calibration_status)
        cutoff, source = self.default_cutoff()
        return ServiceInfo(i.model_id, i.dimension, cutoff, i.identity_count, i.face_count, i.index_type, __version__,
                           source, bool(status and status.stale), status.changes_since if status else 0,
                           status.calibrated_at.timestamp() if status else 0.0,
                           self.unknown.retention.keep_days if self.unknown is not None else 0.0)

    @translated
    async def calibrate(self, target_fpir: float = 0.0, target_fnir: float = 0.0,
                        apply: bool = False) -> CalibrateResult:
        """Fit the cutoff to the enrolled faces (docs/calibration.md); apply: every replica uses it
        for requests without max_distance, unless the operator set FACESEARCH_MAX_DISTANCE. One at a time,
        on the runtime's calibration thread; over calibration.MAX_PAIRS comparisons: RESOURCE_EXHAUSTED
        before any work; cancelled with the request."""
        result = await self.runtime.calibrate(self.gallery.calibrate, target_fpir, target_fnir, apply)
        return CalibrateResult(result, apply)

    # -- unknown faces (--keep-unknown-days; README "Unknown visitors") ------------------------------
    @translated
    async def list_unknown_clusters(self, page_size: int = 0, page_token: str = "") -> UnknownPage:
        """Clusters of kept unknown faces, largest first, a page at a time; works with retention off too
        (what an earlier run kept)."""
        page: UnknownPage = await self.runtime.read(self.gallery.unknown_clusters, validate.page_size(page_size),
                                                    page_token)
        return page

    @translated
    async def unknown_face_image(self, face_id: str) -> bytes:
        jpeg: bytes = await self.runtime.read(self.gallery.unknown_face_image, validate.face_id(face_id))
        return jpeg

    @translated
    async def enroll_unknown_cluster(self, cluster_id: str, identity_id: str, *,
                                     display_name: str = "") -> EnrollResult:
        """The cluster's faces join an identity (created if new) through the gallery's enrolment, with its
        dedupe (a crop the identity has already is a duplicate); then they leave the unknown faces."""
        cid = validate.face_id(cluster_id, "cluster_id")
        validate.check_identity_id(identity_id)
        validate.profile(display_name, None)
        kept = await self.runtime.read(self.gallery.unknown_cluster_faces, cid)
        faces = [NewFace(v, source_sha256=sha256_of(crop) if crop else None, crop_jpeg=crop) for _, v, crop in kept]
        (added,) = await self._written(self.gallery.add_batch,
                                       [Enrolment(identity_id, faces, display_name or None, None)],
                                       model_id=self.model_id)
        await self.runtime.write(self.gallery.forget_unknown, cid, [i for i, _, _ in kept])
        return EnrollResult(identity_id, added.created, added.face_ids, duplicates=added.duplicates)

    @translated
    async def delete_unknown(self, cluster_id: str = "", *, all_faces: bool = False) -> int:
        """Forget one cluster's faces, or (all_faces) every unknown face; how many went."""
        if bool(cluster_id) == all_faces:
            raise InvalidArgument("give either cluster_id or all (to delete every unknown face), not both")
        cid = validate.face_id(cluster_id, "cluster_id") if cluster_id else None
        deleted: int = await self.runtime.write(self.gallery.forget_unknown, cid)
        return deleted
