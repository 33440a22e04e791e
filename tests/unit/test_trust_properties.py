"""Property: whatever admins do to a grant, whoever approves and however the clock moves, what IAM
holds for a request was covered by the grant as it stood when it was written, and is covered by
the grant as it stands once the operator has caught up.

The operator is the pure core (`decide`) carried out on a fake IAM, as the reconciler does; the
approvals are pinned by the same admission function the webhook calls. The oracle below is
written from the API contract, not from the lifecycle's own helpers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitaccess.api.bindings import parse_reference
from jitaccess.api.objects import Grant, parse_grant, read_decision
from jitaccess.api.times import format_time, parse_time
from jitaccess.policy.admission import admit_approval
from jitaccess.policy.approvals import spec_digest, terms_digest
from jitaccess.policy.lifecycle import decide
from jitaccess.policy.steps import read_state
from tests.unit.factories import KEY, admitted, carry_out, grant_body, request_body

START = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
ALICE = "user:alice@example.com"
ROLES = ["roles/compute.admin", "roles/storage.admin", "roles/compute.viewer"]
_WINDOW = re.compile(r'timestamp\("([^"]+)"\) && request\.time < timestamp\("([^"]+)"\)')

grant_edits = st.fixed_dictionaries(
    {},
    optional={
        "roles": st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True),
        "maxDuration": st.sampled_from(["30m", "1h", "2h"]),
        "principals": st.sampled_from([[ALICE], ["user:bob@example.com"], ["domain:example.com"]]),
        "approval": st.sampled_from(
            [
                None,
                {"approvers": ["user:bob@example.com"]},
                {"approvers": ["user:bob@example.com", "user:carol@example.com"], "minApprovals": 2},
            ]
        ),
        "justification": st.sampled_from([None, {"pattern": "^INC-[0-9]+: .+"}, {"pattern": "^CHG-.+"}]),
    },
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), grant_edits),
        st.tuples(st.just("approve"), st.sampled_from(["user:bob@example.com", "user:Carol@example.com"])),
        st.tuples(st.just("wait"), st.sampled_from([1, 10, 25, 40, 70])),
        st.tuples(st.just("revoke"), st.none()),
    ),
    max_size=12,
)
requests = st.fixed_dictionaries(
    {
        "roles": st.sampled_from(
            [None, ["roles/compute.admin"], ["roles/compute.admin", "roles/storage.admin"]]
        ),
        "duration": st.sampled_from(["30m", "1h", "90m"]),
        "start_in": st.sampled_from([None, 20, 45]),
    }
)
initial_grants = st.fixed_dictionaries(
    {
        "approval": st.sampled_from([None, {"approvers": ["user:bob@example.com"]}]),
        "maxDuration": st.sampled_from(["1h", "2h"]),
    }
)


class World:
    """One request, its grant, the approvals filed, a fake IAM and the clock."""

    def __init__(self, grant_spec: dict[str, Any], request: dict[str, Any]) -> None:
        self.grant_body = grant_body(**grant_spec)
        self.now = START
        start = format_time(START + timedelta(minutes=request["start_in"])) if request["start_in"] else None
        self.body = admitted(
            request_body(
                created=format_time(START),
                roles=request["roles"],
                duration=request["duration"],
                startTime=start,
            )
        )
        self.approvals: list[dict[str, Any]] = []
        self.iam: dict[str, list[Any]] = {}

    @property
    def grant(self) -> Grant | None:
        return parse_grant(self.grant_body)[0]

    def edit(self, change: dict[str, Any]) -> None:
        spec = {**self.grant_body["spec"], **change}
        self.grant_body = grant_body(**spec)

    def approve(self, approver: str) -> None:
        """File an approval the way the webhooks would admit it (or refuse it)."""
        spec = {
            "request": "r",
            "decision": "Approve",
            "approver": approver.lower(),  # admission stamps the authenticated, normalised member
            "approverGroups": [],
        }
        verdict = admit_approval(spec, self.body, self.grant)
        if verdict.allowed:
            spec.update(verdict.stamp)
            number = len(self.approvals)
            self.approvals.append(
                {"metadata": {"name": f"a{number}", "creationTimestamp": format_time(self.now)}, "spec": spec}
            )

    def revoke(self) -> None:
        self.body["spec"]["revoke"] = True  # the one spec change admission allows

    def settle(self) -> None:
        """Reconcile until nothing changes, checking every IAM write as it happens."""
        decisions = tuple(read_decision(a, attested=True) for a in self.approvals)
        for _ in range(12):
            grant = self.grant
            step = decide(read_state(self.body, KEY), grant, self.now, timedelta(days=30), decisions)
            if not step.changes_anything:
                return
            for change in step.iam:
                for binding in change.hold:
                    problem = self.uncovered(binding, grant, change.hold)
                    assert problem is None, f"written although {problem}: {binding}"
            self.body = carry_out(self.body, step, self.iam)
        raise AssertionError("did not settle")

    def held(self) -> list[Any]:
        return [b for bindings in self.iam.values() for b in bindings if parse_reference(b.condition())]

    def uncovered(self, binding: Any, grant: Grant | None, written_with: Any) -> str | None:
        """Why `grant` does not cover `binding` (written together with `written_with`), or None."""
        if grant is None:
            return "there is no valid grant"
        spec = self.body["spec"]
        if binding.resource != grant.resource or binding.role not in grant.roles:
            return f"{binding.role} on {binding.resource} is not in the grant"
        if binding.member != ALICE or not any(p in (ALICE, "domain:example.com") for p in grant.principals):
            return f"{binding.member} is not a principal of the grant"
        if spec.get("roles") is not None and binding.role not in spec["roles"]:
            return f"{binding.role} was not asked for"
        start, end = (parse_time(t) for t in _WINDOW.search(binding.expression).groups())
        if end - start > grant.max_duration:
            return f"the window {end - start} exceeds maxDuration {grant.max_duration}"
        if grant.justification_pattern and not re.fullmatch(
            grant.justification_pattern, spec["justification"]
        ):
            return "the justification does not match the grant's pattern"
        if grant.approval is not None:
            written = sorted(b.role for b in written_with if b.expression == binding.expression)
            seconds = int((end - start).total_seconds())
            approvers = {
                a["spec"]["approver"]
                for a in self.approvals
                if a["spec"]["approver"] in grant.approval.approvers
                and self.given_for(a, grant.resource, written, seconds)
            }
            if len(approvers) < grant.approval.min_approvals:
                return f"only {len(approvers)} of {grant.approval.min_approvals} approvals are for what was written"
        return None

    def given_for(self, approval: dict[str, Any], resource: str, roles: list[str], seconds: int) -> bool:
        """Was this approval given for this object and for exactly these terms (the digest
        admission pinned into it, as the API contract defines requestDigest)?"""
        uid = self.body["metadata"]["uid"]
        terms = terms_digest(uid, spec_digest(self.body["spec"]), resource, roles, seconds)
        return approval["spec"]["requestUID"] == uid and approval["spec"]["requestDigest"] == terms


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial_grants, requests, actions)
def test_iam_only_ever_holds_what_the_grant_covered_when_written_and_covers_now(grant_spec, request, steps):
    world = World(grant_spec, request)
    world.settle()
    for kind, value in steps:
        if kind == "edit":
            world.edit(value)
        elif kind == "approve":
            world.approve(value)
        elif kind == "wait":
            world.now += timedelta(minutes=value)
        else:
            world.revoke()
        world.settle()
        held = world.held()
        if held:
            grant = world.grant
            for binding in held:
                problem = world.uncovered(binding, grant, held)
                assert problem is None, f"still held although {problem}: {binding}"
            phase = world.body["status"].get("phase")
            assert phase == "Active", f"IAM holds {len(held)} binding(s) of a request that is {phase}"
            assert not world.body["spec"].get("revoke")
            window_end = parse_time(_WINDOW.search(held[0].expression).group(2))
            assert world.now < window_end, "a binding outlived its window"
