"""Property tests: the validators never crash on any JSON, every refusal names a
field, whatever they accept is well-formed, and any binding we render is one IAM accepts and
cannot be bent by the text inside it."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jitaccess.api.bindings import Activation, Reference, reference_of, render
from jitaccess.api.durations import DurationError, parse_duration
from jitaccess.api.names import member_error, resource_error, role_error
from jitaccess.api.objects import compile_pattern, parse_grant, parse_request_spec, pattern_error, text_error
from jitaccess.policy.admission import Caller, IdentitySettings, admit_request, approval_spec_error
from jitaccess_emulator.rules import (
    IamError,
    Limits,
    StoredPolicy,
    apply_set,
    check_limits,
    normalise,
    validate_binding,
)
from tests.unit.factories import grant_body

NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "grant",
    "roles",
    "duration",
    "justification",
    "startTime",
    "revoke",
    "requester",
    "requesterGroups",
]
SPEC_VALUES = st.fixed_dictionaries({}, optional={name: JSON for name in FIELDS}) | JSON
GRANT_FIELDS = [
    "resource",
    "roles",
    "principals",
    "maxDuration",
    "defaultDuration",
    "justification",
    "approval",
]
PLAIN = re.compile(r"[\x21-\x7e]+")  # what any accepted name is made of: visible ASCII, no spaces


@settings(max_examples=400)
@given(SPEC_VALUES)
def test_request_specs_never_crash_the_parser_and_every_error_names_a_spec_field(spec):
    parsed, errors = parse_request_spec({"metadata": {"name": "r", "namespace": "team"}, "spec": spec})
    assert (parsed is None) == bool(errors)
    assert all(error.path.startswith("spec") for error in errors)


@settings(max_examples=400)
@given(st.fixed_dictionaries({}, optional={name: JSON for name in GRANT_FIELDS}) | JSON)
def test_grant_specs_never_crash_the_parser_and_every_error_names_a_spec_field(spec):
    parsed, errors = parse_grant({"metadata": {"name": "g"}, "spec": spec})
    assert (parsed is None) == bool(errors)
    assert all(error.path.startswith("spec") for error in errors)


@settings(max_examples=300)
@given(SPEC_VALUES)
def test_admission_of_any_request_body_never_crashes_and_a_refusal_names_a_field(spec):
    grant, _ = parse_grant(grant_body(name="g"))
    decision = admit_request(
        "CREATE",
        {"metadata": {"name": "r", "namespace": "team"}, "spec": spec},
        None,
        Caller("alice@example.com", ("sre@example.com",)),
        IdentitySettings(),
        grant,
        True,
        NOW,
    )
    assert decision.allowed or decision.message.startswith("spec")


@given(st.fixed_dictionaries({}, optional={"request": JSON, "decision": JSON, "comment": JSON}))
def test_approval_fields_are_judged_without_crashing(spec):
    mistake = approval_spec_error(spec)
    if mistake is None:
        assert spec["decision"] in ("Approve", "Deny") and isinstance(spec["request"], str)
    else:
        assert mistake.startswith(("spec.request", "spec.decision", "spec.comment"))


@settings(max_examples=400)
@given(JSON | st.text(max_size=120))
def test_names_are_judged_without_crashing_and_accepted_ones_are_plain_ascii(value):
    for judge in (resource_error, role_error, member_error):
        verdict = judge(value)
        assert verdict is None or isinstance(verdict, str)
        if verdict is None:
            assert isinstance(value, str) and PLAIN.fullmatch(value)


@settings(max_examples=400)
@given(st.text(max_size=40))
def test_durations_parse_or_say_why(text):
    try:
        value = parse_duration(text)
    except DurationError as error:
        assert str(error)
    else:
        assert isinstance(value, timedelta) and value >= timedelta(0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(max_size=200))
def test_patterns_are_accepted_or_refused_and_matching_is_total(pattern, text):
    verdict = pattern_error(pattern)
    if verdict is None:
        compile_pattern(pattern).fullmatch(text)  # RE2: linear time, never raises on input
    else:
        assert isinstance(verdict, str)


@settings(max_examples=300)
@given(st.text(max_size=1024))
def test_accepted_justifications_are_one_printable_line(text):
    if text_error(text, 1024) is None:
        assert all(ch.isprintable() or unicodedata.category(ch) == "Zs" for ch in text)
        assert "\n" not in text and "\r" not in text


@settings(max_examples=300)
@given(
    justification=st.text(max_size=1500),
    approvers=st.lists(st.sampled_from(["user:bob@example.com", "group:leads@example.com"]), max_size=2),
    minutes=st.integers(min_value=5, max_value=7 * 24 * 60),
    name=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,60}[a-z0-9])?", fullmatch=True),
)
def test_every_rendered_binding_is_accepted_by_iam_and_stays_ours(justification, approvers, minutes, name):
    start = datetime(2026, 11, 24, 9, tzinfo=UTC)
    uid = "6b0e2a4c-0d1f-4e6a-9a51-3c2f0d7b8e11"
    bindings = render(
        Activation(
            "projects/my-sandbox",
            ("roles/compute.admin", "projects/my-sandbox/roles/custom.role"),
            "user:alice@example.com",
            start,
            start + timedelta(minutes=minutes),
            justification,
            tuple(approvers),
            Reference.sealed("team-sre", name, uid, b"k" * 32),
        )
    )
    raw = [{"role": b.role, "members": [b.member], "condition": b.condition()} for b in bindings]
    try:
        validated = [validate_binding(b, n, "projects/my-sandbox", frozenset()) for n, b in enumerate(raw)]
        check_limits(normalise(validated), Limits())
        apply_set(
            StoredPolicy(),
            {"policy": {"version": 3, "bindings": raw}},
            resource="projects/my-sandbox",
            limits=Limits(),
            unknown_roles=frozenset(),
            counter=1,
        )
    except IamError as error:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"IAM would refuse our binding: {error}") from error
    for binding in bindings:
        assert reference_of(binding.condition()) == ("team-sre", name, uid)
        assert len(binding.description) <= 560 + len(name)
