"""The admin RPCs (UpdateIdentity, MergeIdentities, MoveFaces, ListFaces, GetFaceImage) and their CLI
commands, against the session's real server (tests/conftest.py). Identity ids start with "adm-"."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pytest

from facesearch.client import FaceSearchClient
from facesearch.v1 import facesearch_pb2 as pb

from tests.helpers import sample_photo

N, INV = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def client(server):
    with FaceSearchClient(server.target, timeout=120) as c:
        yield c


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def top(client, photo) -> str:
    return client.identify(photo).faces[0].matches[0].identity_id


def test_admin_rpcs_fix_a_wrong_enrolment(client, samples):
    ben, madonna = sample_photo(samples, "train", "ben_afflek"), sample_photo(samples, "train", "madonna")
    query = sample_photo(samples, "val", "madonna")
    enrolled = client.enroll("adm-ben", [ben, madonna], display_name="Ben", metadata={"k": "v"}).face_ids
    try:
        faces = list(client.iter_faces("adm-ben", page_size=1))   # two pages
        assert [f.face_id for f in faces] == list(enrolled)
        for f in faces:
            assert (f.identity_id, f.model_id, f.has_image) == ("adm-ben", "facenet-128", True)
            assert len(f.source_sha256) == 64
            assert f.HasField("box") and f.box.width > 0 and f.detection_score > 0.5 and f.created_at.seconds > 0
        assert client.face_image(faces[1].face_id)[:3] == b"\xff\xd8\xff"
        assert top(client, query) == "adm-ben"

        assert client.move_faces([faces[1].face_id], "adm-madonna", create_if_missing=True) == 1
        assert top(client, query) == "adm-madonna"       # searchable under the new identity at once
        renamed = client.update_identity("adm-madonna", display_name="Madonna", metadata={"src": "fix"})
        assert (renamed.display_name, dict(renamed.metadata), renamed.face_ids) == ("Madonna", {"src": "fix"},
                                                                                     [faces[1].face_id])
        cleared = client.update_identity("adm-ben", metadata={})   # the mask names metadata only: the name stays
        assert (cleared.display_name, dict(cleared.metadata)) == ("Ben", {})
        listed = client.list_identities(100, prefix="adm-")
        assert [i.identity_id for i in listed.identities] == ["adm-ben", "adm-madonna"]
        assert [i.identity_id for i in client.list_identities(100, prefix="Madon").identities] == ["adm-madonna"]

        assert client.merge_identities(["adm-madonna"], "adm-ben") == 1
        assert top(client, query) == "adm-ben"
        assert code_of(client.get_identity, "adm-madonna")[0] == N
        assert client.get_identity("adm-ben").face_ids == list(enrolled)
    finally:
        client.delete_identity("adm-ben")


def test_admin_rpcs_refuse_bad_input_with_the_right_status(client):
    face = client.enroll("adm-vec", embeddings=[np.ones(128)]).face_ids[0]
    stub = client.stub
    try:
        for code, message, call in [
            (N, "has no stored image", lambda: client.face_image(face)),
            (N, "no face 999999", lambda: client.face_image("999999")),
            (INV, "not a face id", lambda: client.face_image("abc")),
            (INV, "not a face id", lambda: client.move_faces(["1", "x"], "adm-vec")),
            (INV, "no face_ids", lambda: client.move_faces([], "adm-vec")),
            (N, "no face 999999", lambda: client.move_faces([face, "999999"], "adm-vec")),
            (N, "no identity 'adm-nobody'", lambda: client.move_faces([face], "adm-nobody")),
            (INV, "identity_id contains", lambda: client.move_faces([face], "adm\x00x", create_if_missing=True)),
            (INV, "update_mask path 'face_ids'", lambda: stub.UpdateIdentity(pb.UpdateIdentityRequest(
                identity_id="adm-vec", update_mask={"paths": ["face_ids"]}))),
            (N, "no identity", lambda: client.update_identity("adm-nobody", display_name="x")),
            (INV, "identity_id is empty", lambda: client.update_identity("", display_name="x")),
            (INV, "display_name", lambda: client.update_identity("adm-vec", display_name="x" * 300)),
            (INV, "also one of the source_ids", lambda: client.merge_identities(["adm-vec"], "adm-vec")),
            (INV, "no source_ids", lambda: client.merge_identities([], "adm-vec")),
            (N, "no identity", lambda: client.merge_identities(["adm-nobody"], "adm-vec")),
            (N, "no identity", lambda: client.list_faces("adm-nobody")),
            (INV, "page_token", lambda: client.list_faces("adm-vec", 10, "@@@")),
            (INV, "page_size 5000", lambda: client.list_faces("adm-vec", 5000)),
            (INV, "prefix contains control characters", lambda: client.list_identities(10, prefix="a\x00")),
        ]:
            got, details = code_of(call)
            assert (got, message in details) == (code, True), (message, got, details)
        assert client.get_identity("adm-vec").face_ids == [face]   # nothing moved
    finally:
        client.delete_identity("adm-vec")


def cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facesearch.client.cli", "--server", server.target, *args],
                          capture_output=True, text=True, timeout=60)


def test_the_admin_cli_commands(server, client, samples, tmp_path):
    face = client.enroll("adm-cli", [sample_photo(samples, "train", "mindy_kaling")]).face_ids[0]
    try:
        out = cli(server, "rename", "adm-cli", "Mindy K.", "--metadata", "team=office", "--metadata", "n=1")
        assert out.returncode == 0 and "display name 'Mindy K.', metadata {n=1, team=office}" in out.stdout, out
        out = cli(server, "--json", "faces", "adm-cli")
        assert out.returncode == 0, out.stderr
        listed = json.loads(out.stdout)
        assert (listed["face_id"], listed["identity_id"], listed["has_image"]) == (face, "adm-cli", True)
        out = cli(server, "face-image", face, "-o", str(tmp_path / "face.jpg"))
        assert out.returncode == 0 and (tmp_path / "face.jpg").read_bytes() == client.face_image(face), out.stderr
        out = cli(server, "move", face, "--to", "adm-cli-2", "--create")
        assert out.returncode == 0 and "1 face(s) moved to adm-cli-2" in out.stdout, out
        out = cli(server, "merge", "adm-cli-2", "--into", "adm-cli")
        assert out.returncode == 0 and "1 face(s) moved" in out.stdout, out
        out = cli(server, "list", "--prefix", "adm-cli")
        assert out.returncode == 0 and out.stdout.splitlines() == ["adm-cli\tMindy K.\t1 face(s)"], out
        out = cli(server, "face-image", "999999")
        assert out.returncode == 2 and "NOT_FOUND" in out.stderr
    finally:
        client.delete_identity("adm-cli")


def test_unknown_face_rpcs_through_grpc_and_the_cli_with_retention_off(server, client, samples):
    """The session server keeps no unknown faces (off by default): an unknown face's Identify leaves
    nothing; the four RPCs answer through the servicer and the client, with their status codes."""
    unknown = client.identify(sample_photo(samples, "val", "elton_john"), source="adm-cam", max_distance=0.01)
    assert unknown.faces and not unknown.faces[0].known
    listed = client.list_unknown_clusters()
    assert (list(listed.clusters), listed.total_faces, listed.waiting_faces) == ([], 0, 0)
    assert client.delete_unknown(all=True) == 0
    assert code_of(client.unknown_face_image, "1")[0] == N
    assert code_of(client.enroll_unknown_cluster, "1", "adm-unknown")[0] == N
    assert code_of(client.delete_unknown, "1")[0] == N
    assert code_of(client.delete_unknown)[0] == INV                    # neither a cluster nor all
    assert code_of(client.enroll_unknown_cluster, "x1", "adm-unknown")[0] == INV
    out = cli(server, "unknown")
    assert out.returncode == 0 and "0 cluster(s)" in out.stderr, out
    out = cli(server, "unknown-delete", "--all")
    assert out.returncode == 0 and out.stdout.strip() == "0 unknown face(s) deleted", out
