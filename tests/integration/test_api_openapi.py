"""The live OpenAPI document tells the truth: it is valid OpenAPI 3.0, states the bounds the
API checks (names, lengths, ranges, body types) and every status each endpoint can answer.
The fuzz run (test_api_fuzz.py) checks the API against it; this checks what it says."""

import pytest
from openapi_spec_validator import validate

from pvc import limits
from pvc.api.app import MAC_LENGTH, MAC_PATTERN, NUMBER_DIGITS, NUMBER_PATH_ARGS, NUMBER_PATTERN
from pvc.api.params import COMPONENT_PATTERN, NAME_PATTERN
from tests.integration.test_api import call

BODY_TYPES = {"application/json", "application/x-www-form-urlencoded"}
ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
def document(api_server):
    status, document = call(api_server, "GET", "/openapi.json", key=None)
    assert status == 200
    validate(document)
    return document


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path != "/openapi.json":
                yield f"{method.upper()} {path}", operation


def test_every_status_is_documented_with_a_json_schema(document):
    for label, operation in operations(document):
        responses = operation["responses"]
        assert {"200", "400", "413", "431"} <= set(responses), label
        if operation.get("security") != []:
            assert {"401", "503"} <= set(responses), label
        if "requestBody" in operation:
            assert "415" in responses, label
        for status, response in responses.items():
            schema = response["content"]["application/json"]["schema"]
            assert (schema == ERROR) == (int(status) >= 400), (label, status)


def test_bodies_are_json_or_forms_with_the_same_schema(document):
    bodies = [op["requestBody"] for _, op in operations(document) if "requestBody" in op]
    assert len(bodies) >= 10
    # the bodies of bytes: a piece of an upload, of a volume or an OVA (pvc.ops.storage_upload)
    octets = [body for body in bodies if set(body["content"]) == {"application/octet-stream"}]
    assert len(octets) == 2
    for body in bodies:
        if body in octets:
            continue
        assert set(body["content"]) == BODY_TYPES
        schemas = [content["schema"] for content in body["content"].values()]
        assert schemas[0] == schemas[1] and schemas[0]["additionalProperties"] is False


def test_bounds_are_stated(document):
    paths = document["paths"]
    (lines,) = paths["/vm/{vm}/console"]["get"]["parameters"][1:]
    assert lines["schema"] == {
        "type": "integer",
        "default": 100,
        "minimum": 1,
        "maximum": limits.CONSOLE_LINES_MAX,
    }
    define = paths["/vm"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert define["required"] == ["xml"]
    assert define["properties"]["xml"]["maxLength"] == limits.XML_MAX
    assert "bytes" in define["properties"]["xml"]["description"]
    assert define["properties"]["node"]["pattern"] == NAME_PATTERN
    assert define["properties"]["tags"]["maxLength"] == limits.TAGS_MAX * 64 - 1
    state = paths["/vm/{vm}/state"]["post"]["requestBody"]["content"]["application/json"]
    timeout = state["schema"]["properties"]["timeout"]
    assert (timeout["minimum"], timeout["exclusiveMinimum"], timeout["maximum"]) == (0, True, 3600)
    initialize = paths["/initialize"]["post"]["requestBody"]["content"]["application/json"]
    assert initialize["schema"]["properties"]["name"]["pattern"] == NAME_PATTERN
    for label, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] in NUMBER_PATH_ARGS:
                assert parameter["schema"]["pattern"] == NUMBER_PATTERN, label
                assert parameter["schema"]["maxLength"] == NUMBER_DIGITS, label
            elif parameter["in"] == "path" and parameter["name"] == "mac":
                assert parameter["schema"]["pattern"] == MAC_PATTERN, label
                assert parameter["schema"]["maxLength"] == MAC_LENGTH, label
            elif parameter["in"] == "path":
                pattern = COMPONENT_PATTERN if parameter["name"] == "vm" else NAME_PATTERN
                assert parameter["schema"]["pattern"] == pattern, label
                assert parameter["schema"]["maxLength"] == limits.NAME_MAX, label
    assert str(limits.BODY_MAX) in document["info"]["description"]
