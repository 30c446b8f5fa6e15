"""Typed Python clients over the generated stubs: FaceSearchClient (sync) and AsyncFaceSearchClient.

    with FaceSearchClient("127.0.0.1:50051", token=None) as c:
        c.enroll("chris_evans", [open("a.jpg", "rb").read()], display_name="Chris Evans")
        c.identify(open("b.jpg", "rb").read()).faces[0].matches[0].identity_id
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import grpc

from facesearch.v1 import facesearch_pb2 as pb
from facesearch.v1 import facesearch_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
MAX_MESSAGE = 8 << 20
FaceMode = pb.FaceMode


def _options(max_message: int):
    return [("grpc.max_send_message_length", max_message), ("grpc.max_receive_message_length", max_message)]


def _credentials(tls: bool, ca_cert: str | None):
    if not (tls or ca_cert):
        return None
    return grpc.ssl_channel_credentials(root_certificates=Path(ca_cert).read_bytes() if ca_cert else None)


def _image(image) -> bytes:
    return Path(image).read_bytes() if isinstance(image, (str, Path)) else bytes(image)


def identify_request(image=None, embedding=None, *, model_id: str = "", top_k: int = 0, max_distance: float = 0.0,
                     face_mode: int = pb.FACE_MODE_UNSPECIFIED, max_faces: int = 0,
                     source: str = "") -> pb.IdentifyRequest:
    """source: e.g. a camera's name, kept with unknown faces by a server with --keep-unknown-days."""
    req = pb.IdentifyRequest(top_k=top_k, max_distance=max_distance, face_mode=face_mode, max_faces=max_faces,
                             source=source)
    if embedding is not None:
        req.embedding.CopyFrom(pb.Embedding(values=list(map(float, embedding)), model_id=model_id))
    else:
        req.image = _image(image)
    return req


def enroll_request(identity_id: str, images: Sequence = (), *, embeddings: Sequence = (), display_name: str = "",
                   metadata: dict | None = None, face_mode: int = pb.FACE_MODE_UNSPECIFIED,
                   model_id: str = "") -> pb.EnrollRequest:
    return pb.EnrollRequest(identity_id=identity_id, display_name=display_name, face_mode=face_mode,
                            images=[_image(i) for i in images], metadata=metadata or {},
                            embeddings=[pb.Embedding(values=list(map(float, e)), model_id=model_id)
                                        for e in embeddings])


def verify_request(identity_id: str, image=None, embedding=None, *, max_distance: float = 0.0,
                   face_mode: int = pb.FACE_MODE_UNSPECIFIED, model_id: str = "") -> pb.VerifyRequest:
    req = pb.VerifyRequest(identity_id=identity_id, max_distance=max_distance, face_mode=face_mode)
    if embedding is not None:
        req.embedding.CopyFrom(pb.Embedding(values=list(map(float, embedding)), model_id=model_id))
    else:
        req.image = _image(image)
    return req


def update_identity_request(identity_id: str, *, display_name: str | None = None,
                            metadata: dict[str, str] | None = None) -> pb.UpdateIdentityRequest:
    """Sets the fields given (not None); an empty one clears that field."""
    paths = [name for name, value in (("display_name", display_name), ("metadata", metadata)) if value is not None]
    return pb.UpdateIdentityRequest(identity_id=identity_id, display_name=display_name or "",
                                    metadata=metadata or {}, update_mask={"paths": paths})


def embed_request(image, *, face_mode: int = pb.FACE_MODE_UNSPECIFIED, max_faces: int = 0) -> pb.EmbedRequest:
    return pb.EmbedRequest(image=_image(image), face_mode=face_mode, max_faces=max_faces)


class _Base:
    def __init__(self, target: str, token: str | None, timeout: float | None):
        self.target = target
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def _kw(self, timeout):
        return {"metadata": self.metadata, "timeout": self.timeout if timeout is None else timeout}


class FaceSearchClient(_Base):
    """Blocking client. Errors raise grpc.RpcError with the server's status and message."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls: bool = False,
                 ca_cert: str | None = None, timeout: float | None = 60.0, max_message: int = MAX_MESSAGE):
        super().__init__(target, token, timeout)
        creds = _credentials(tls, ca_cert)
        self.channel = (grpc.secure_channel(target, creds, _options(max_message)) if creds
                        else grpc.insecure_channel(target, _options(max_message)))
        self.stub = pb_grpc.FaceSearchStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def identify(self, image=None, embedding=None, *, timeout=None, **kw) -> pb.IdentifyResponse:
        return self.stub.Identify(identify_request(image, embedding, **kw), **self._kw(timeout))

    def identify_stream(self, requests: Iterable[pb.IdentifyRequest], *, timeout=None) -> Iterator[pb.IdentifyResponse]:
        return self.stub.IdentifyStream(iter(requests), **self._kw(timeout))

    def enroll(self, identity_id: str, images: Sequence = (), *, timeout=None, **kw) -> pb.EnrollResponse:
        return self.stub.Enroll(enroll_request(identity_id, images, **kw), **self._kw(timeout))

    def verify(self, identity_id: str, image=None, embedding=None, *, timeout=None, **kw) -> pb.VerifyResponse:
        return self.stub.Verify(verify_request(identity_id, image, embedding, **kw), **self._kw(timeout))

    def embed(self, image, *, timeout=None, **kw) -> pb.EmbedResponse:
        return self.stub.Embed(embed_request(image, **kw), **self._kw(timeout))

    def get_identity(self, identity_id: str, *, timeout=None) -> pb.Identity:
        return self.stub.GetIdentity(pb.GetIdentityRequest(identity_id=identity_id), **self._kw(timeout))

    def list_identities(self, page_size: int = 0, page_token: str = "", *, prefix: str = "",
                        timeout: float | None = None) -> pb.ListIdentitiesResponse:
        """prefix: only identities whose identity_id or display_name starts with it (case-sensitive)."""
        req = pb.ListIdentitiesRequest(page_size=page_size, page_token=page_token, prefix=prefix)
        return self.stub.ListIdentities(req, **self._kw(timeout))

    def iter_identities(self, page_size: int = 100, prefix: str = "") -> Iterator[pb.Identity]:
        token = ""
        while True:
            page = self.list_identities(page_size, token, prefix=prefix)
            yield from page.identities
            if not (token := page.next_page_token):
                return

    def delete_identity(self, identity_id: str, *, timeout=None) -> pb.DeleteIdentityResponse:
        return self.stub.DeleteIdentity(pb.DeleteIdentityRequest(identity_id=identity_id), **self._kw(timeout))

    def delete_face(self, face_id: str, *, timeout=None) -> pb.DeleteFaceResponse:
        return self.stub.DeleteFace(pb.DeleteFaceRequest(face_id=str(face_id)), **self._kw(timeout))

    def info(self, *, timeout=None) -> pb.Info:
        return self.stub.GetInfo(pb.GetInfoRequest(), **self._kw(timeout))

    # -- admin (README "Managing identities") ---------------------------------------------------
    def update_identity(self, identity_id: str, *, display_name: str | None = None,
                        metadata: dict[str, str] | None = None, timeout: float | None = None) -> pb.Identity:
        """Set the display name and/or metadata given (not None); "" or {} clears that field."""
        req = update_identity_request(identity_id, display_name=display_name, metadata=metadata)
        return self.stub.UpdateIdentity(req, **self._kw(timeout))

    def merge_identities(self, source_ids: Sequence[str], target_id: str, *, timeout: float | None = None) -> int:
        """Move every face of the sources to the target and delete the sources; how many faces moved."""
        req = pb.MergeIdentitiesRequest(source_ids=list(source_ids), target_id=target_id)
        return self.stub.MergeIdentities(req, **self._kw(timeout)).faces_moved

    def move_faces(self, face_ids: Sequence[str], target_identity_id: str, *, create_if_missing: bool = False,
                   timeout: float | None = None) -> int:
        """Move faces to another identity; how many moved."""
        req = pb.MoveFacesRequest(face_ids=[str(f) for f in face_ids], target_identity_id=target_identity_id,
                                  create_if_missing=create_if_missing)
        return self.stub.MoveFaces(req, **self._kw(timeout)).faces_moved

    def list_faces(self, identity_id: str, page_size: int = 0, page_token: str = "", *,
                   timeout: float | None = None) -> pb.ListFacesResponse:
        req = pb.ListFacesRequest(identity_id=identity_id, page_size=page_size, page_token=page_token)
        return self.stub.ListFaces(req, **self._kw(timeout))

    def iter_faces(self, identity_id: str, page_size: int = 100) -> Iterator[pb.Face]:
        token = ""
        while True:
            page = self.list_faces(identity_id, page_size, token)
            yield from page.faces
            if not (token := page.next_page_token):
                return

    def face_image(self, face_id: str, *, timeout: float | None = None) -> bytes:
        """The face's stored crop (JPEG bytes); NOT_FOUND when it has none."""
        return self.stub.GetFaceImage(pb.GetFaceImageRequest(face_id=str(face_id)), **self._kw(timeout)).jpeg

    # -- unknown faces (README "Unknown visitors") ---------------------------------------------
    def list_unknown_clusters(self, page_size: int = 0, page_token: str = "", *,
                              timeout: float | None = None) -> pb.ListUnknownClustersResponse:
        req = pb.ListUnknownClustersRequest(page_size=page_size, page_token=page_token)
        return self.stub.ListUnknownClusters(req, **self._kw(timeout))

    def iter_unknown_clusters(self, page_size: int = 100) -> Iterator[pb.UnknownCluster]:
        token = ""
        while True:
            page = self.list_unknown_clusters(page_size, token)
            yield from page.clusters
            if not (token := page.next_page_token):
                return

    def unknown_face_image(self, face_id: str, *, timeout: float | None = None) -> bytes:
        req = pb.GetUnknownFaceImageRequest(face_id=str(face_id))
        return self.stub.GetUnknownFaceImage(req, **self._kw(timeout)).jpeg

    def enroll_unknown_cluster(self, cluster_id: str, identity_id: str, *, display_name: str = "",
                               timeout: float | None = None) -> pb.EnrollResponse:
        """The cluster's faces join the identity (created if new) and leave the unknown faces."""
        req = pb.EnrollUnknownClusterRequest(cluster_id=str(cluster_id), identity_id=identity_id,
                                             display_name=display_name)
        return self.stub.EnrollUnknownCluster(req, **self._kw(timeout))

    def delete_unknown(self, cluster_id: str = "", *, all: bool = False, timeout: float | None = None) -> int:
        """Forget one cluster's faces, or all=True every unknown face; how many went."""
        req = pb.DeleteUnknownRequest(cluster_id=str(cluster_id), all=all)
        return self.stub.DeleteUnknown(req, **self._kw(timeout)).faces_deleted

    def calibrate(self, *, target_fpir: float = 0.0, target_fnir: float = 0.0, apply: bool = False,
                  timeout: float | None = None) -> pb.CalibrateResponse:
        """Fit the cutoff to the enrolled faces; target_fnir decides when set, both 0: target_fnir 0.01."""
        req = pb.CalibrateRequest(target_fpir=target_fpir, target_fnir=target_fnir, apply=apply)
        return self.stub.Calibrate(req, **self._kw(timeout))


class AsyncFaceSearchClient(_Base):
    """asyncio client (grpc.aio); the same methods as FaceSearchClient, awaited."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls: bool = False,
                 ca_cert: str | None = None, timeout: float | None = 60.0, max_message: int = MAX_MESSAGE):
        super().__init__(target, token, timeout)
        creds = _credentials(tls, ca_cert)
        self.channel = (grpc.aio.secure_channel(target, creds, _options(max_message)) if creds
                        else grpc.aio.insecure_channel(target, _options(max_message)))
        self.stub = pb_grpc.FaceSearchStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def identify(self, image=None, embedding=None, *, timeout=None, **kw) -> pb.IdentifyResponse:
        return await self.stub.Identify(identify_request(image, embedding, **kw), **self._kw(timeout))

    def identify_stream(self, requests, *, timeout=None):
        return self.stub.IdentifyStream(requests, **self._kw(timeout))

    async def enroll(self, identity_id: str, images: Sequence = (), *, timeout=None, **kw) -> pb.EnrollResponse:
        return await self.stub.Enroll(enroll_request(identity_id, images, **kw), **self._kw(timeout))

    async def verify(self, identity_id: str, image=None, embedding=None, *, timeout=None, **kw) -> pb.VerifyResponse:
        return await self.stub.Verify(verify_request(identity_id, image, embedding, **kw), **self._kw(timeout))

    async def embed(self, image, *, timeout=None, **kw) -> pb.EmbedResponse:
        return await self.stub.Embed(embed_request(image, **kw), **self._kw(timeout))

    async def get_identity(self, identity_id: str, *, timeout=None) -> pb.Identity:
        return await self.stub.GetIdentity(pb.GetIdentityRequest(identity_id=identity_id), **self._kw(timeout))

    async def list_identities(self, page_size: int = 0, page_token: str = "", *, prefix: str = "",
                              timeout: float | None = None) -> pb.ListIdentitiesResponse:
        req = pb.ListIdentitiesRequest(page_size=page_size, page_token=page_token, prefix=prefix)
        return await self.stub.ListIdentities(req, **self._kw(timeout))

    async def delete_identity(self, identity_id: str, *, timeout=None) -> pb.DeleteIdentityResponse:
        return await self.stub.DeleteIdentity(pb.DeleteIdentityRequest(identity_id=identity_id), **self._kw(timeout))

    async def delete_face(self, face_id: str, *, timeout=None) -> pb.DeleteFaceResponse:
        return await self.stub.DeleteFace(pb.DeleteFaceRequest(face_id=str(face_id)), **self._kw(timeout))

    async def info(self, *, timeout=None) -> pb.Info:
        return await self.stub.GetInfo(pb.GetInfoRequest(), **self._kw(timeout))

    async def update_identity(self, identity_id: str, *, display_name: str | None = None,
                              metadata: dict[str, str] | None = None, timeout: float | None = None) -> pb.Identity:
        req = update_identity_request(identity_id, display_name=display_name, metadata=metadata)
        return await self.stub.UpdateIdentity(req, **self._kw(timeout))

    async def merge_identities(self, source_ids: Sequence[str], target_id: str, *, timeout: float | None = None) -> int:
        req = pb.MergeIdentitiesRequest(source_ids=list(source_ids), target_id=target_id)
        return (await self.stub.MergeIdentities(req, **self._kw(timeout))).faces_moved

    async def move_faces(self, face_ids: Sequence[str], target_identity_id: str, *, create_if_missing: bool = False,
                         timeout: float | None = None) -> int:
        req = pb.MoveFacesRequest(face_ids=[str(f) for f in face_ids], target_identity_id=target_identity_id,
                                  create_if_missing=create_if_missing)
        return (await self.stub.MoveFaces(req, **self._kw(timeout))).faces_moved

    async def list_faces(self, identity_id: str, page_size: int = 0, page_token: str = "", *,
                         timeout: float | None = None) -> pb.ListFacesResponse:
        req = pb.ListFacesRequest(identity_id=identity_id, page_size=page_size, page_token=page_token)
        return await self.stub.ListFaces(req, **self._kw(timeout))

    async def face_image(self, face_id: str, *, timeout: float | None = None) -> bytes:
        return (await self.stub.GetFaceImage(pb.GetFaceImageRequest(face_id=str(face_id)), **self._kw(timeout))).jpeg

    async def list_unknown_clusters(self, page_size: int = 0, page_token: str = "", *,
                                    timeout: float | None = None) -> pb.ListUnknownClustersResponse:
        req = pb.ListUnknownClustersRequest(page_size=page_size, page_token=page_token)
        return await self.stub.ListUnknownClusters(req, **self._kw(timeout))

    async def unknown_face_image(self, face_id: str, *, timeout: float | None = None) -> bytes:
        req = pb.GetUnknownFaceImageRequest(face_id=str(face_id))
        return (await self.stub.GetUnknownFaceImage(req, **self._kw(timeout))).jpeg

    async def enroll_unknown_cluster(self, cluster_id: str, identity_id: str, *, display_name: str = "",
                                     timeout: float | None = None) -> pb.EnrollResponse:
        req = pb.EnrollUnknownClusterRequest(cluster_id=str(cluster_id), identity_id=identity_id,
                                             display_name=display_name)
        return await self.stub.EnrollUnknownCluster(req, **self._kw(timeout))

    async def delete_unknown(self, cluster_id: str = "", *, all: bool = False, timeout: float | None = None) -> int:
        req = pb.DeleteUnknownRequest(cluster_id=str(cluster_id), all=all)
        return (await self.stub.DeleteUnknown(req, **self._kw(timeout))).faces_deleted

    async def calibrate(self, *, target_fpir: float = 0.0, target_fnir: float = 0.0, apply: bool = False,
                        timeout: float | None = None) -> pb.CalibrateResponse:
        req = pb.CalibrateRequest(target_fpir=target_fpir, target_fnir=target_fnir, apply=apply)
        return await self.stub.Calibrate(req, **self._kw(timeout))
