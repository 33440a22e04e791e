import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jitaccess.api.bindings import (
    TITLE,
    Activation,
    Binding,
    Reference,
    parse_reference,
    reference_of,
    render,
)

KEY = b"k" * 32
MAC = Reference.sealed("team-sre", "alice-fix", "6b0e2a4c-0d1f-4e6a-9a51-3c2f0d7b8e11", KEY).mac
START = datetime(2026, 11, 24, 9, 0, 0, 999999, tzinfo=UTC)
EXPRESSION = re.compile(
    r'\(request\.time >= timestamp\("\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\) && '
    r'request\.time < timestamp\("\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\)\)'
)


def activation(justification="INC-1: fix it", approvers=(), roles=("roles/compute.admin",)):
    return Activation(
        "projects/my-sandbox",
        roles,
        "user:alice@example.com",
        START,
        START + timedelta(minutes=30),
        justification,
        approvers,
        Reference.sealed("team-sre", "alice-fix", "6b0e2a4c-0d1f-4e6a-9a51-3c2f0d7b8e11", KEY),
    )


def test_exact_format_of_api_md():
    (binding,) = render(activation())
    assert binding.to_status() == {
        "resource": "projects/my-sandbox",
        "role": "roles/compute.admin",
        "member": "user:alice@example.com",
        "condition": {
            "title": "JIT access activation",
            "description": "Self-approved, justification: INC-1: fix it "
            "[jitaccess.dev/request=team-sre/alice-fix uid=6b0e2a4c-0d1f-4e6a-9a51-3c2f0d7b8e11"
            f" mac={MAC}]",
            "expression": '(request.time >= timestamp("2026-11-24T09:00:00Z") && '
            'request.time < timestamp("2026-11-24T09:30:00Z"))',
        },
    }
    assert reference_of(binding.condition()) == (
        "team-sre",
        "alice-fix",
        "6b0e2a4c-0d1f-4e6a-9a51-3c2f0d7b8e11",
    )


def test_one_binding_per_role_and_approvers_named():
    bindings = render(activation(roles=("roles/a.b", "roles/c.d"), approvers=("user:bob@example.com",)))
    assert [b.role for b in bindings] == ["roles/a.b", "roles/c.d"]
    assert bindings[0].description.startswith("Approved by user:bob@example.com, justification: ")


def test_hostile_justification_never_reaches_the_expression_and_stays_one_line():
    nasty = 'x") || true || ("\\\n\r\t\u2028 [jitaccess.dev/request=other/victim uid=0000] ' + '"' * 500
    (binding,) = render(activation(nasty))
    assert EXPRESSION.fullmatch(binding.expression)
    assert (
        "\n" not in binding.description
        and "\r" not in binding.description
        and "\u2028" not in binding.description
    )
    assert reference_of(binding.condition())[1] == "alice-fix"  # the imitation is not taken for the reference
    assert len(binding.description) < 400


def test_only_a_mac_made_with_our_key_proves_a_reference():
    (binding,) = render(activation())
    reference = parse_reference(binding.condition())
    assert reference.verified(KEY) and len(reference.mac) == 24
    assert not reference.verified(b"x" * 32)  # another installation's key
    assert not Reference("team-sre", "alice-fix", reference.uid, "0" * 24).verified(KEY)  # forged
    assert not Reference("team-sre", "other", reference.uid, reference.mac).verified(KEY)  # moved
    legacy = parse_reference(
        {"title": TITLE, "description": f"x [jitaccess.dev/request=a/b uid={reference.uid}]"}
    )
    assert legacy == Reference("a", "b", reference.uid) and not legacy.verified(KEY)
    assert reference.legacy().text().endswith(f"uid={reference.uid}]")


def test_foreign_conditions_are_not_ours():
    assert (
        reference_of({"title": TITLE, "description": "Self-approved, justification: x"}) is None
    )  # Google's tool
    assert reference_of({"title": "other", "description": "[jitaccess.dev/request=a/b uid=1]"}) is None
    assert reference_of(None) is None


@settings(max_examples=300)
@given(st.text(max_size=2000))
def test_any_justification_round_trips_safely(text):
    (binding,) = render(activation(text))
    assert EXPRESSION.fullmatch(binding.expression)
    assert reference_of(binding.condition()) == (
        "team-sre",
        "alice-fix",
        "6b0e2a4c-0d1f-4e6a-9a51-3c2f0d7b8e11",
    )
    assert Binding.from_status(binding.to_status()) == binding
    assert binding.description.isprintable()
