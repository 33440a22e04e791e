from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitaccess.api.durations import DurationError, format_duration, parse_duration
from jitaccess.api.names import member_error, resource_error, role_error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("90s", timedelta(seconds=90)),
        ("168h", timedelta(days=7)),
    ],
)
def test_parses_go_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0m", "-5m", "5", "1d", "999999h", "1h 30m", "m", "30M", "1.5h", None, 30]
)
def test_refuses_what_is_not_a_duration(text):
    with pytest.raises(DurationError):
        parse_duration(text)


@given(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=366)))
def test_format_round_trips(value):
    value = timedelta(seconds=int(value.total_seconds()))
    if value.total_seconds() >= 1:
        assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("name", ["projects/my-sandbox", "folders/123456789012", "organizations/1"])
def test_accepts_resources(name):
    assert resource_error(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "projects/My",
        "projects/ab",
        "project/my-sandbox",
        "folders/0123",
        "folders/x",
        "projects/my-sandbox/",
        "organizations/",
        "",
        "projects/-bad-project",
    ],
)
def test_refuses_bad_resources(name):
    assert "projects/PROJECT_ID" in resource_error(name)


def test_roles_and_the_basic_roles():
    assert role_error("roles/compute.admin") is None
    assert role_error("projects/my-sandbox/roles/customRole") is None
    assert role_error("organizations/123/roles/custom_role") is None
    assert "basic role" in role_error("roles/owner")
    assert "not a role name" in role_error("compute.admin")
    assert "not a role name" in role_error("roles/compute admin")


@pytest.mark.parametrize(
    "member",
    [
        "user:alice@example.com",
        "group:sre@example.com",
        "domain:example.com",
        "serviceAccount:ci@p.iam.gserviceaccount.com",
        "principal://iam.googleapis.com/locations/global/workforcePools/p/subject/s",
    ],
)
def test_accepts_members(member):
    assert member_error(member) is None


@pytest.mark.parametrize(
    "member",
    [
        "alice@example.com",
        "user:alice",
        "user:",
        "allUsers",
        "group:a b@x.com",
        "domain:localhost",
        "user:alice@example.com\n",
        42,
    ],
)
def test_refuses_members(member):
    assert member_error(member) is not None


def test_a_request_is_for_one_identity_never_a_set():
    from jitaccess.api.names import REQUESTER_KINDS, member_error

    one = "principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/subject/x"
    many = "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*"
    assert member_error(one, REQUESTER_KINDS) is None
    assert "set of identities" in (member_error(many, REQUESTER_KINDS) or "")
    assert member_error(many) is None  # a grant may list a set among its principals
