"""Is this request allowed by that grant? One answer for admission, the reconciler and the grant watch.

`check_request` judges a request that holds nothing yet (at admission, and again whenever its
grant or its approvals change, and once more just before anything is written to IAM);
`held_errors` judges what a request already holds against the grant as it is now;
`window_errors` says whether the grant admits activations at all at a given time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.names import email_domain, normal_member
from jitaccess.api.objects import Grant, RequestSpec, compile_pattern
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time

# How far ahead a scheduled activation may be booked.
LONGEST_SCHEDULE = timedelta(days=7)
# How far in the past a startTime may lie when the request is filed (clock skew, typing time).
START_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class Terms:
    """What an eligible request resolves to: the roles on the resource and the duration, with defaults."""

    resource: str
    roles: tuple[str, ...]
    duration: timedelta

    @property
    def duration_s(self) -> int:
        return int(self.duration.total_seconds())


def principal_matches(principal: str, member: str, groups: tuple[str, ...]) -> bool:
    """Does grant principal `principal` cover `member` (who belongs to `groups`)? Case-insensitive
    for e-mail addresses and domains, as IAM is."""
    kind, _, value = principal.partition(":")
    if kind == "group":
        return normal_member(principal) in {normal_member(group) for group in groups}
    if kind == "domain":
        return email_domain(member) == value.lower() and member.startswith(("user:", "serviceAccount:"))
    return normal_member(principal) == normal_member(member)


def is_covered(member: str, groups: tuple[str, ...], principals: tuple[str, ...]) -> bool:
    return any(principal_matches(principal, member, groups) for principal in principals)


def resolve(spec: RequestSpec, grant: Grant) -> Terms:
    return Terms(grant.resource, spec.roles or grant.roles, spec.duration or grant.default_duration)


def coverage_errors(
    requester: str, groups: tuple[str, ...], roles: tuple[str, ...], explicit: bool, grant: Grant
) -> list[FieldError]:
    """Why the grant does not (or no longer) cover this requester and these roles."""
    errors: list[FieldError] = []
    if not is_covered(requester, groups, grant.principals):
        errors.append(
            FieldError(
                "spec.requester",
                f"{requester} is not eligible for grant {grant.name}: it is not among the grant's principals "
                "(directly, by group or by domain)",
                reason=Reason.NOT_ELIGIBLE,
            )
        )
    for index, role in enumerate(roles):
        if role not in grant.roles:
            errors.append(
                FieldError(
                    f"spec.roles[{index}]" if explicit else "spec.roles",
                    f"{role} is not one of grant {grant.name}'s roles ({', '.join(grant.roles)})",
                    reason=Reason.NOT_ELIGIBLE,
                )
            )
    return errors


def check_request(
    spec: RequestSpec, requester: str, grant: Grant, booked_at: datetime
) -> tuple[Terms | None, list[FieldError]]:
    """Every reason `grant` does not allow this request, or the resolved terms when it does.

    `booked_at` is when the request was filed (its creation): a startTime is judged against it,
    so the answer is the same at admission and at every later look.
    """
    terms = resolve(spec, grant)
    errors = coverage_errors(requester, spec.requester_groups, spec.roles or (), True, grant)
    errors += duration_errors(terms.duration, grant)
    errors += justification_errors(spec.justification, grant)
    if spec.start_time is not None:
        if spec.start_time < booked_at - START_SLACK:
            errors.append(FieldError("spec.startTime", "is in the past; leave it out to start now"))
        elif spec.start_time > booked_at + LONGEST_SCHEDULE:
            errors.append(FieldError("spec.startTime", "is more than 7 days ahead"))
    return (None, errors) if errors else (terms, [])


def held_errors(
    resource: str,
    roles: tuple[str, ...],
    duration: timedelta,
    spec: RequestSpec,
    requester: str,
    grant: Grant,
) -> list[FieldError]:
    """Why the grant as it is now no longer covers access already written: any role, the resource,
    the principal, the duration or the justification."""
    errors = coverage_errors(requester, spec.requester_groups, roles, spec.roles is not None, grant)
    if resource != grant.resource:
        errors.append(
            FieldError("spec.grant", f"grant {grant.name} is now for {grant.resource}, not {resource}")
        )
    errors += duration_errors(duration, grant)
    errors += justification_errors(spec.justification, grant)
    return errors


def window_errors(grant: Grant, now: datetime, start: datetime | None = None) -> list[FieldError]:
    """Why the grant admits no activation at `now` (or one starting at `start`): before its
    notBefore or from its notAfter on."""
    begins = start or now
    if grant.not_before is not None and begins < grant.not_before:
        return [
            FieldError(
                "spec.grant",
                f"grant {grant.name} admits activations only from {format_time(grant.not_before)}",
                reason=Reason.NOT_YET_ELIGIBLE,
            )
        ]
    if grant.not_after is not None and max(begins, now) >= grant.not_after:
        return [
            FieldError(
                "spec.grant",
                f"grant {grant.name} ended at {format_time(grant.not_after)}",
                reason=Reason.ELIGIBILITY_EXPIRED,
            )
        ]
    return []


def duration_errors(duration: timedelta, grant: Grant) -> list[FieldError]:
    if duration <= grant.max_duration:
        return []
    return [
        FieldError(
            "spec.duration",
            f"{format_duration(duration)} exceeds the grant's maxDuration {format_duration(grant.max_duration)}",
        )
    ]


def justification_errors(justification: str, grant: Grant) -> list[FieldError]:
    hint = f" ({grant.justification_hint})" if grant.justification_hint else ""
    if not justification.strip():
        if grant.justification_required:
            return [FieldError("spec.justification", f"is required by grant {grant.name}{hint}")]
        return []
    if (
        grant.justification_pattern
        and compile_pattern(grant.justification_pattern).fullmatch(justification) is None
    ):
        return [
            FieldError(
                "spec.justification",
                f"does not match grant {grant.name}'s pattern {grant.justification_pattern!r}{hint}",
            )
        ]
    return []
