"""Is this request allowed by that grant? One answer for admission and for the reconciler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.names import email_domain
from jitaccess.api.objects import Grant, RequestSpec, compile_pattern

# How far ahead a scheduled activation may be booked.
LONGEST_SCHEDULE = timedelta(days=7)


@dataclass(frozen=True)
class Terms:
    """What an eligible request resolves to: the roles and the window, with defaults applied."""

    roles: tuple[str, ...]
    duration: timedelta


def principal_matches(principal: str, member: str, groups: tuple[str, ...]) -> bool:
    """Does grant principal `principal` cover `member` (who belongs to `groups`)?"""
    kind, _, value = principal.partition(":")
    if kind == "group":
        return principal.lower() in {group.lower() for group in groups}
    if kind == "domain":
        return email_domain(member) == value.lower() and member.startswith(("user:", "serviceAccount:"))
    return principal.lower() == member.lower()


def is_covered(member: str, groups: tuple[str, ...], principals: tuple[str, ...]) -> bool:
    return any(principal_matches(principal, member, groups) for principal in principals)


def coverage_errors(spec: RequestSpec, requester: str, grant: Grant) -> list[FieldError]:
    """Why the grant does not (or no longer) cover this requester and these roles."""
    errors: list[FieldError] = []
    if not is_covered(requester, spec.requester_groups, grant.principals):
        errors.append(
            FieldError(
                "spec.requester",
                f"{requester} is not eligible for grant {grant.name}: it is not among the grant's principals "
                "(directly, by group or by domain)",
            )
        )
    for index, role in enumerate(spec.roles or ()):
        if role not in grant.roles:
            errors.append(
                FieldError(
                    f"spec.roles[{index}]",
                    f"{role} is not one of grant {grant.name}'s roles ({', '.join(grant.roles)})",
                )
            )
    return errors


def check_request(
    spec: RequestSpec, requester: str, grant: Grant, now: datetime
) -> tuple[Terms | None, list[FieldError]]:
    """Every reason `grant` does not allow this request, or the resolved terms when it does."""
    errors = coverage_errors(spec, requester, grant)
    duration = spec.duration or grant.default_duration
    if duration > grant.max_duration:
        errors.append(
            FieldError(
                "spec.duration",
                f"{format_duration(duration)} exceeds the grant's maxDuration {format_duration(grant.max_duration)}",
            )
        )
    errors.extend(justification_errors(spec.justification, grant))
    if spec.start_time is not None:
        if spec.start_time < now - timedelta(minutes=1):
            errors.append(FieldError("spec.startTime", "is in the past; leave it out to start now"))
        elif spec.start_time > now + LONGEST_SCHEDULE:
            errors.append(FieldError("spec.startTime", "is more than 7 days ahead"))
    if errors:
        return None, errors
    return Terms(roles=spec.roles or grant.roles, duration=duration), []


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
