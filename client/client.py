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
                     face_mode: int = pb.FACE_MODE_UNSPECIFIED, max_faces: int = 0) -> pb.IdentifyRequest:
    req = pb.IdentifyRequest(top_k=top_k, max_distance=max_distance, face_mode=face_mode, max_faces=max_faces)
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

    def list_identities(self, page_size: int = 0, page_token: str = "", *, timeout=None) -> pb.ListIdentitiesResponse:
        req = pb.ListIdentitiesRequest(page_size=page_size, page_token=page_token)
        return self.stub.ListIdentities(req, **self._kw(timeout))

    def iter_identities(self, page_size: int = 100) -> Iterator[pb.Identity]:
        token = ""
        while True:
            page = self.list_identities(page_size, token)
            yield from page.identities
            if not (token := page.next_page_token):
                return

    def delete_identity(self, identity_id: str, *, timeout=None) -> pb.DeleteIdentityResponse:
        return self.stub.DeleteIdentity(pb.DeleteIdentityRequest(identity_id=identity_id), **self._kw(timeout))

    def delete_face(self, face_id: str, *, timeout=None) -> pb.DeleteFaceResponse:
        return self.stub.DeleteFace(pb.DeleteFaceRequest(face_id=str(face_id)), **self._kw(timeout))

    def info(self, *, timeout=None) -> pb.Info:
        return self.stub.GetInfo(pb.GetInfoRequest(), **self._kw(timeout))

    def calibrate(self, *, target_fpir: float = 0.0, target_fnir: float = 0.0, apply: bool = False,
                  timeout=None) -> pb.CalibrateResponse:
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

    async def list_identities(self, page_size: int = 0, page_token: str = "", *,
                              timeout=None) -> pb.ListIdentitiesResponse:
        req = pb.ListIdentitiesRequest(page_size=page_size, page_token=page_token)
        return await self.stub.ListIdentities(req, **self._kw(timeout))

    async def delete_identity(self, identity_id: str, *, timeout=None) -> pb.DeleteIdentityResponse:
        return await self.stub.DeleteIdentity(pb.DeleteIdentityRequest(identity_id=identity_id), **self._kw(timeout))

    async def delete_face(self, face_id: str, *, timeout=None) -> pb.DeleteFaceResponse:
        return await self.stub.DeleteFace(pb.DeleteFaceRequest(face_id=str(face_id)), **self._kw(timeout))

    async def info(self, *, timeout=None) -> pb.Info:
        return await self.stub.GetInfo(pb.GetInfoRequest(), **self._kw(timeout))

    async def calibrate(self, *, target_fpir: float = 0.0, target_fnir: float = 0.0, apply: bool = False,
                        timeout=None) -> pb.CalibrateResponse:
        req = pb.CalibrateRequest(target_fpir=target_fpir, target_fnir=target_fnir, apply=apply)
        return await self.stub.Calibrate(req, **self._kw(timeout))
