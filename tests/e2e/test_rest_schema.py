"""schemathesis against the server's own /openapi.json: every operation, with valid and generated
bad input; no answer may be a 500, an undocumented status, or a body that breaks its schema.

The server is one of its own (REST alone, `--no-grpc`), since generated calls enrol, delete and
calibrate with apply. A few examples per operation keep it to about a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from facesearch.rest import create_app
from facesearch.testing import ServerProcess

from tests.helpers import sample_photo

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
# The operations, for the tests' ids; the cases come from the document the server serves.
DOCUMENT = create_app().openapi()["paths"]
OPERATIONS = [(method.upper(), path) for path, ops in DOCUMENT.items() for method in ops]


def negatable(operation: dict) -> bool:
    """Whether any input can break the schema (any string is a valid path segment)."""
    return "requestBody" in operation or any(p["in"] != "path" or p["schema"].get("type") != "string"
                                             for p in operation.get("parameters", []))


CASES = [(method, path, mode) for method, path in OPERATIONS for mode in GenerationMode
         if mode == GenerationMode.POSITIVE or negatable(DOCUMENT[path][method.lower()])]


@pytest.fixture(scope="module")
def rest_only(tmp_path_factory, samples):
    proc = ServerProcess(tmp_path_factory.mktemp("rest-only"), "--no-grpc").start()
    try:
        assert proc.port is None and proc.http_port, "REST alone: no gRPC port"
        import httpx

        photo = sample_photo(samples, "train")   # one identity, so that reads and calibrate have something
        r = httpx.post(f"{proc.http_url}/v1/identities", data={"identity_id": "1"},
                       files={"images": ("a.jpg", photo)}, timeout=120)
        assert r.status_code == 200 and r.json()["face_ids"] == ["1"], r.text
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def api_schema(rest_only):
    return schemathesis.openapi.from_url(f"{rest_only.http_url}/openapi.json", timeout=30)


def test_the_served_document_has_every_operation(api_schema):
    served = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize("method, path, mode", CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_the_api_keeps_to_its_own_schema(api_schema, rest_only, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case):
        case.call_and_validate(base_url=rest_only.http_url, checks=CHECKS, timeout=120)

    check()
