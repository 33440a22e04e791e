from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.api.objects import parse_grant, parse_request_spec
from jitaccess.policy.eligibility import check_request
from tests.unit.factories import grant_body, request_body

NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)


def grant(**spec):
    parsed, errors = parse_grant(grant_body(**spec))
    assert errors == []
    return parsed


def spec(**fields):
    parsed, errors = parse_request_spec(request_body(**fields))
    assert errors == []
    return parsed


def test_grant_defaults():
    g = grant()
    assert g.default_duration == timedelta(hours=1)
    assert g.justification_required is True
    assert g.approval is None
    assert grant(maxDuration="30m").default_duration == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("maxDuration", "999999h", "spec.maxDuration"),
        ("maxDuration", "1m", "spec.maxDuration"),
        ("defaultDuration", "3h", "spec.defaultDuration"),
        ("roles", ["roles/owner"], "spec.roles[0]"),
        ("principals", ["alice@example.com"], "spec.principals[0]"),
        ("resource", "projects/X", "spec.resource"),
        ("justification", {"pattern": "(?<=x)a"}, "spec.justification.pattern"),
        ("approval", {"approvers": ["group:x@example.com"], "minApprovals": 0}, "spec.approval.minApprovals"),
    ],
)
def test_invalid_grants_name_the_field(field, value, path):
    parsed, errors = parse_grant(grant_body(**{field: value}))
    assert parsed is None
    assert path in [error.path for error in errors]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"duration": "-5m"}, "spec.duration"),
        ({"roles": ["roles/compute.admin", "roles/compute.admin"]}, "spec.roles"),
        ({"justification": "INC-1: line one\nline two"}, "spec.justification"),
        ({"justification": "INC-1: \u202eevil right-to-left override"}, "spec.justification"),
        ({"startTime": "tomorrow"}, "spec.startTime"),
        ({"requester": "group:sre@example.com"}, "spec.requester"),
        ({"grant": "Not_A_Name"}, "spec.grant"),
    ],
)
def test_malformed_requests_name_the_field(fields, path):
    parsed, errors = parse_request_spec(request_body(**fields))
    assert parsed is None
    assert path in [error.path for error in errors]


def test_eligible_by_user_group_and_domain():
    g = grant()
    assert check_request(spec(), "user:alice@example.com", g, NOW)[1] == []
    by_group = spec(requester="user:zed@example.com", requesterGroups=["group:SRE@example.com"])
    assert check_request(by_group, "user:zed@example.com", g, NOW)[1] == []
    by_domain = spec(requester="user:yan@example.org")
    assert check_request(by_domain, "user:yan@example.org", g, NOW)[1] == []


def test_not_eligible_principal_is_refused_with_the_reason():
    terms, errors = check_request(
        spec(requester="user:mallory@evil.test"), "user:mallory@evil.test", grant(), NOW
    )
    assert terms is None
    assert errors[0].path == "spec.requester"
    assert "not eligible" in errors[0].message


def test_role_not_in_grant_duration_over_max_and_justification():
    g = grant(justification={"pattern": "^(INC|CHG)-[0-9]+: .{10,}", "hint": "Ticket, then what"})
    s = spec(roles=["roles/iam.securityAdmin"], duration="3h", justification="because")
    _, errors = check_request(s, "user:alice@example.com", g, NOW)
    messages = {error.path: error.message for error in errors}
    assert "not one of grant g's roles" in messages["spec.roles[0]"]
    assert messages["spec.duration"] == "3h exceeds the grant's maxDuration 2h"
    assert (
        "does not match" in messages["spec.justification"]
        and "Ticket, then what" in messages["spec.justification"]
    )


def test_justification_required_unless_the_grant_says_otherwise():
    _, errors = check_request(spec(justification=""), "user:alice@example.com", grant(), NOW)
    assert [e.path for e in errors] == ["spec.justification"]
    optional = grant(justification={"required": False})
    assert check_request(spec(justification=None), "user:alice@example.com", optional, NOW)[1] == []


def test_start_time_bounds():
    g = grant()
    past = spec(startTime="2026-11-24T08:00:00Z")
    assert check_request(past, "user:alice@example.com", g, NOW)[1][0].path == "spec.startTime"
    far = spec(startTime="2026-12-24T08:00:00Z")
    assert "7 days" in check_request(far, "user:alice@example.com", g, NOW)[1][0].message
    soon = spec(startTime="2026-11-24T10:00:00Z")
    assert check_request(soon, "user:alice@example.com", g, NOW)[1] == []


def test_catastrophic_pattern_is_matched_in_linear_time():
    g = grant(justification={"pattern": "(a+)+$"})
    text = "a" * 1000 + "!"
    _, errors = check_request(spec(justification=text), "user:alice@example.com", g, NOW)
    assert errors and errors[0].path == "spec.justification"
