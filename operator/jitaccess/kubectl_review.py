"""What an approver sees before deciding, for `kubectl jit`: the request's facts (printed inert:
they are someone else's input), the step that waits, and why a decision could not count."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.durations import format_duration
from jitaccess.api.names import normal_member
from jitaccess.api.objects import (
    NOT_PLAIN_TEXT,
    Grant,
    RequestSpec,
    parse_request_spec,
    read_decision,
)
from jitaccess.api.phases import Phase
from jitaccess.api.times import parse_time
from jitaccess.policy.approvals import Subject, Tally, spec_digest, tally, terms_digest
from jitaccess.policy.eligibility import Terms, is_covered, resolve

DONE = {"Approve": "approved", "Deny": "denied", "Review": "reviewed", "Revoke": "revoked (as reviewer)"}
# How an escaped character reads where a shorter spelling is familiar.
ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Refused(Exception):
    """Nothing was filed, for a reason the user can act on."""


@dataclass(frozen=True)
class Awaited:
    """A request as an approver sees it: what it resolves to under its grant as it is now, the
    digest that pins an approval to exactly that, and how its approval stands."""

    body: Mapping[str, Any]
    spec: RequestSpec
    grant: Grant
    terms: Terms
    digest: str
    tally: Tally

    @property
    def name(self) -> str:
        return str(metadata_of(self.body).get("name", ""))

    @property
    def step(self) -> str:
        waiting = self.tally.waiting
        return f"{waiting.index + 1}/{waiting.of}" if waiting else "-"


def judge(
    body: Mapping[str, Any], grant: Grant | None, approvals: Sequence[Mapping[str, Any]]
) -> Awaited | None:
    """`body` under `grant` as it is now, its approvals counted as the operator counts them; None
    when the request is malformed or the grant asks for no approval."""
    spec, _ = parse_request_spec(body)
    if spec is None or grant is None or grant.approval is None:
        return None
    metadata = metadata_of(body)
    uid, name = str(metadata.get("uid") or ""), metadata.get("name")
    try:
        opened = parse_time(metadata.get("creationTimestamp"))
    except ValueError:
        return None
    terms = resolve(spec, grant)
    # The same digest admission computes: an approval naming it is refused if the request or
    # its grant no longer resolves to what the approver was shown.
    digest = terms_digest(uid, spec_digest(spec_of(body)), terms.resource, terms.roles, terms.duration_s)
    # The plugin cannot check admission's seal (it has not the key), so it takes the operator's
    # word for it (status.counted): it never shows a step as met before the operator does.
    decisions = [
        read_decision(approval, status_of(approval).get("counted") is True)
        for approval in approvals
        if spec_of(approval).get("request") == name
    ]
    requester = normal_member(spec.requester or "")
    counted = tally(decisions, requester, grant.approval, Subject(uid, digest, opened))
    return Awaited(body, spec, grant, terms, digest, counted)


def may_approve(
    body: Mapping[str, Any], grants: Mapping[str, Grant], member: str, groups: tuple[str, ...]
) -> bool:
    """Waiting for approval, not mine, and I am an approver at some step of its grant."""
    if status_of(body).get("phase") != Phase.AWAITING_APPROVAL:
        return False
    if normal_member(str(spec_of(body).get("requester") or "")) == normal_member(member):
        return False  # the requester never approves their own request
    grant = grants.get(str(spec_of(body).get("grant")))
    return bool(grant and grant.approval and is_covered(member, groups, grant.approval.approvers))


def my_turn(awaited: Awaited, member: str, groups: tuple[str, ...]) -> bool:
    """Is the step that is open mine to approve, with no approval of mine yet? (Whether the
    request waits at all, and is not my own, the callers have asked.)"""
    waiting = awaited.tally.waiting
    return (
        waiting is not None
        and is_covered(member, groups, waiting.step.approvers)
        and normal_member(member) not in awaited.tally.approved_by
    )


def refusal(
    body: Mapping[str, Any], awaited: Awaited | None, decision: str, member: str, groups: tuple[str, ...]
) -> str | None:
    """Why a decision filed now could not count, or None. Admission refuses most of these too;
    asked here so that nobody is asked to confirm a decision that would not count."""
    phase = status_of(body).get("phase")
    if phase != Phase.AWAITING_APPROVAL:
        return (
            f"is {inert(phase or 'not yet validated')}, not AwaitingApproval; "
            f"there is nothing to {decision.lower()}"
        )
    if awaited is None:
        return "cannot be decided on: its grant is gone or asks for no approval"
    if normal_member(awaited.spec.requester or "") == normal_member(member):
        return "is your own request; nobody approves their own request"
    waiting = awaited.tally.waiting
    # An eligible Deny counts at any step; an Approve only at the step that is open.
    if decision != "Approve" or waiting is None or my_turn(awaited, member, groups):
        return None
    if normal_member(member) in awaited.tally.approved_by:
        return "has your approval already; one person counts once"
    return (
        f"waits at step {waiting.index + 1} of {waiting.of} for {', '.join(waiting.step.approvers)}; "
        "an approval of yours would not count there"
    )


def summary(body: Mapping[str, Any], grant: Grant | None, awaited: Awaited | None) -> list[tuple[str, str]]:
    """What an approver decides on, as (label, inert text): the terms as the grant resolves them
    when it can (they are what the approval is pinned to), else as the request spells them."""
    spec, status = spec_of(body), status_of(body)
    if awaited is not None:
        roles, duration = ", ".join(awaited.terms.roles), format_duration(awaited.terms.duration)
    else:
        named = spec.get("roles")
        roles = _words(named) if named else ", ".join(grant.roles) if grant else "(all of the grant's)"
        default = format_duration(grant.default_duration) if grant else "the grant's default"
        duration = str(spec.get("duration") or default)
    start = f"from {spec['startTime']}" if spec.get("startTime") else "as soon as approved"
    so_far = [
        f"{a.get('decision', '?')} by {a.get('approver', '?')} at {a.get('time', '?')}"
        + (f": {a['comment']}" if a.get("comment") else "")
        for a in status.get("approvals") or []
        if isinstance(a, Mapping)
    ]
    lines = [
        ("requester", spec.get("requester", "")),
        ("grant", spec.get("grant", "")),
        ("resource", grant.resource if grant else "(the grant does not exist)"),
        ("roles", roles),
        ("window", f"{start}, for {duration}"),
        ("justification", spec.get("justification", "")),
        ("phase", status.get("phase") or "Pending"),
        ("approval", awaited.tally.summary() if awaited else "(cannot be counted)"),
        ("approvals so far", so_far[0] if so_far else "none"),
        *(("", line) for line in so_far[1:]),
    ]
    return [(label, inert(value)) for label, value in lines]


def confirm(decision: str, request: str, yes: bool, stdin: TextIO, out: TextIO) -> None:
    """Ask on a terminal; with nobody to ask, only --yes decides, so a script says it means it."""
    if yes:
        return
    if not stdin.isatty():
        raise Refused(
            f"stdin is not a terminal, so nobody can be asked to confirm; "
            f"pass --yes to {decision.lower()} {request} as shown above"
        )
    print(f"{decision}? [y/N] ", end="", file=out, flush=True)
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise Refused(f"not {DONE[decision]}: nothing was filed")


def inert(value: object) -> str:
    """`value` safe to print on a terminal: control and invisible characters (escape sequences,
    newlines, bidi overrides) shown escaped, so text from a request can neither restyle the
    terminal nor forge lines of what is shown around it."""
    return "".join(_escaped(ch) for ch in str(value))


def _escaped(ch: str) -> str:
    if unicodedata.category(ch) not in NOT_PLAIN_TEXT:
        return ch
    if ch in ESCAPES:
        return ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _words(value: object) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def age(created: object, now: datetime) -> str:
    """How long ago, spelled as kubectl's AGE column spells it (45s, 5m, 3h, 2d, 1y)."""
    try:
        seconds = int((now - parse_time(created)).total_seconds())
    except ValueError:
        return "<unknown>"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 0:
        return "0s"  # the API server's clock is ahead of ours
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    if days < 2920:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"
