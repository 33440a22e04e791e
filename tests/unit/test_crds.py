"""The CRDs against the examples and a corpus of bad objects, as the sandbox (and kube-apiserver) apply them."""

import copy
from pathlib import Path

import pytest
import yaml

from jitaccess.api.objects import parse_grant, parse_request_spec
from jitaccess_sandbox.crds import load_crds
from jitaccess_sandbox.validation import validate

ROOT = Path(__file__).resolve().parents[2]
CRDS = {crd.kind: crd for crd in load_crds()}


def examples():
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") in CRDS:
                yield pytest.param(document, id=f"{path.name}:{document['metadata']['name']}")


@pytest.mark.parametrize("document", list(examples()))
def test_every_example_is_valid(document):
    assert validate(CRDS[document["kind"]].schema, document) == []
    if document["kind"] == "EligibleGrant":
        assert parse_grant(document)[1] == []
    if document["kind"] == "ActivationRequest":
        assert parse_request_spec(document)[1] == []


def test_every_field_has_a_description():
    def walk(schema, path):
        for name, sub in (schema.get("properties") or {}).items():
            if name != "metadata":
                assert sub.get("description"), f"{path}.{name} has no description"
                walk(sub, f"{path}.{name}")
        if "items" in schema:
            walk(schema["items"], path + "[]")

    for kind, crd in CRDS.items():
        walk(crd.schema, kind)


GRANT = {
    "apiVersion": "jitaccess.dev/v1alpha1",
    "kind": "EligibleGrant",
    "metadata": {"name": "g"},
    "spec": {
        "resource": "projects/my-sandbox",
        "roles": ["roles/compute.admin"],
        "principals": ["group:sre@example.com"],
        "maxDuration": "2h",
    },
}
REQUEST = {
    "apiVersion": "jitaccess.dev/v1alpha1",
    "kind": "ActivationRequest",
    "metadata": {"name": "r", "namespace": "team"},
    "spec": {"grant": "g", "duration": "30m", "justification": "INC-1: x", "requester": "user:a@example.com"},
}

BAD_GRANTS = [
    ("resource", "proj/x", "spec.resource"),
    ("resource", "projects/UPPER", "spec.resource"),
    ("resource", "folders/abc", "spec.resource"),
    ("roles", [], "spec.roles"),
    ("roles", ["roles/owner"], "spec.roles[0]"),
    ("roles", ["roles/editor"], "spec.roles[0]"),
    ("roles", ["compute.admin"], "spec.roles[0]"),
    ("roles", ["roles/a.b", "roles/a.b"], "spec.roles"),
    ("principals", ["alice@example.com"], "spec.principals[0]"),
    ("principals", ["allUsers"], "spec.principals[0]"),
    ("maxDuration", "999999h", "spec.maxDuration"),
    ("maxDuration", "-5m", "spec.maxDuration"),
    ("maxDuration", "1m", "spec.maxDuration"),
    ("maxDuration", 30, "spec.maxDuration"),
    ("defaultDuration", "3h", "spec.defaultDuration"),
    ("approval", {"approvers": [], "minApprovals": 0}, "spec.approval"),
    ("unexpected", True, "spec"),
]


BAD_REQUESTS = [
    ("grant", "Not_A_Name", "spec.grant"),
    ("roles", ["roles/x y"], "spec.roles[0]"),
    ("duration", "1d", "spec.duration"),
    ("duration", "-5m", "spec.duration"),
    ("justification", "x" * 1025, "spec.justification"),
    ("startTime", "tomorrow", "spec.startTime"),
    ("revoke", "yes", "spec.revoke"),
    ("requester", 7, "spec.requester"),
]


BAD_OBJECTS = [(GRANT, *case) for case in BAD_GRANTS] + [(REQUEST, *case) for case in BAD_REQUESTS]


@pytest.mark.parametrize(
    ("base", "field", "value", "path"),
    BAD_OBJECTS,
    ids=[f"{b['kind']}.{f}={v!r}"[:60] for b, f, v, _ in BAD_OBJECTS],
)
def test_bad_objects_are_refused_naming_the_field(base, field, value, path):
    document = copy.deepcopy(base)
    document["spec"][field] = value
    errors = validate(CRDS[base["kind"]].schema, document)
    assert errors and any(error.startswith(path) for error in errors), errors


def test_request_spec_is_immutable_except_revoke_false_to_true():
    schema = CRDS["ActivationRequest"].schema
    old = copy.deepcopy(REQUEST)
    for field, value in [
        ("duration", "1h"),
        ("grant", "other"),
        ("requester", "user:b@example.com"),
        ("roles", ["roles/a.b"]),
        ("justification", "INC-2: y"),
    ]:
        new = copy.deepcopy(old)
        new["spec"][field] = value
        assert any("immutable" in error for error in validate(schema, new, old)), field
    revoked = copy.deepcopy(old)
    revoked["spec"]["revoke"] = True
    assert validate(schema, revoked, old) == []
    back = copy.deepcopy(revoked)
    back["spec"]["revoke"] = False
    assert any("cannot go back" in error for error in validate(schema, back, revoked))
    with_status = copy.deepcopy(old)
    with_status["status"] = {"phase": "Active"}
    assert validate(schema, with_status, old) == []


def test_approvals_cannot_be_edited():
    schema = CRDS["ActivationApproval"].schema
    old = {"spec": {"request": "r", "decision": "Approve"}}
    new = {"spec": {"request": "r", "decision": "Deny"}}
    assert any("cannot be edited" in error for error in validate(schema, new, old))


def test_the_crds_carry_the_patterns_and_limits_derived_from_api():
    """One source: api/ holds each rule; crds/ carries what api/schema_rules.py derives from it."""
    from jitaccess.api.schema_rules import differences

    stale = [f"{file.name}: {path}.{key}" for file, path, key, _, _ in differences(ROOT / "crds")]
    assert not stale, f"run `python -m jitaccess.api.schema_rules --write`: {stale}"
