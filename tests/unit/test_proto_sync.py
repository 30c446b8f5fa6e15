"""The generated code in facesearch/v1 must match proto/ (regenerate with `make proto`)."""

from facesearch import protogen


def test_generated_code_is_in_sync_with_proto(tmp_path):
    fresh = protogen.generate(tmp_path)
    assert [p.name for p in fresh] == ["facesearch_pb2.py", "facesearch_pb2.pyi", "facesearch_pb2_grpc.py"]
    for path in fresh:
        committed = protogen.REPO / "facesearch" / "v1" / path.name
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run `make proto`"


def test_service_has_the_fixed_rpc_names():
    from facesearch.v1 import facesearch_pb2

    service = facesearch_pb2.DESCRIPTOR.services_by_name["FaceSearch"]
    assert {m.name for m in service.methods} == {
        "Identify", "IdentifyStream", "Enroll", "Verify", "Embed", "GetIdentity", "ListIdentities",
        "DeleteIdentity", "DeleteFace", "GetInfo", "Calibrate",
        "UpdateIdentity", "MergeIdentities", "MoveFaces", "ListFaces", "GetFaceImage",
        "ListUnknownClusters", "GetUnknownFaceImage", "EnrollUnknownCluster", "DeleteUnknown"}   # issue #23
