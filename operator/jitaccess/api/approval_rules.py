"""A grant's approval rules: approval in one or several steps, and break-glass access with its
review after the fact. Parsed here; what they mean for a request lives in `policy/`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.fields import Body, duration_field, mapping, string_list
from jitaccess.api.limits import (
    DEFAULT_APPROVAL_TIMEOUT,
    DEFAULT_REVIEW_WITHIN,
    LONGEST_GRANT,
    MAX_APPROVAL_STEPS,
    MAX_PRINCIPALS,
    SHORTEST_GRANT,
)
from jitaccess.api.names import member_error


@dataclass(frozen=True)
class ApprovalStep:
    """One level of approval: how many of whom, within how long of the level opening."""

    approvers: tuple[str, ...]
    min_approvals: int
    timeout: timedelta


@dataclass(frozen=True)
class ApprovalRule:
    """A grant's approval: its steps, satisfied in order (one step is the common case)."""

    steps: tuple[ApprovalStep, ...]
    # False: an extension of access that was approved needs no approval of its own.
    for_extensions: bool = True

    @property
    def approvers(self) -> tuple[str, ...]:
        """Everyone who may decide at some step."""
        return tuple(dict.fromkeys(a for step in self.steps for a in step.approvers))

    @property
    def min_approvals(self) -> int:
        return sum(step.min_approvals for step in self.steps)

    def describe(self) -> str:
        """ "2 approval(s)", or "1+2 approvals in 2 steps"."""
        if len(self.steps) == 1:
            return f"{self.steps[0].min_approvals} approval(s)"
        return (
            "+".join(str(step.min_approvals) for step in self.steps)
            + f" approvals in {len(self.steps)} steps"
        )


@dataclass(frozen=True)
class BreakGlass:
    """Access at once, without approval, reviewed after the fact by `reviewers`."""

    max_duration: timedelta
    reviewers: tuple[str, ...]
    review_within: timedelta


def parse_approval(spec: Body, errors: list[FieldError]) -> ApprovalRule | None:
    raw = spec.get("approval")
    if raw is None:
        return None
    approval = mapping(raw)
    for_extensions = approval.get("forExtensions", True)
    if not isinstance(for_extensions, bool):
        errors.append(FieldError("spec.approval.forExtensions", "must be true or false"))
        for_extensions = True
    if "steps" not in approval:  # the single-step shorthand
        return ApprovalRule((_approval_step(approval, "spec.approval", errors),), for_extensions)
    if "approvers" in approval or "minApprovals" in approval or "timeout" in approval:
        errors.append(
            FieldError("spec.approval", "give either steps or approvers/minApprovals/timeout, not both")
        )
    steps = approval.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_APPROVAL_STEPS:
        errors.append(FieldError("spec.approval.steps", f"must list 1 to {MAX_APPROVAL_STEPS} steps"))
        return ApprovalRule(())
    return ApprovalRule(
        tuple(
            _approval_step(mapping(step), f"spec.approval.steps[{index}]", errors)
            for index, step in enumerate(steps)
        ),
        for_extensions,
    )


def parse_break_glass(
    spec: Body, approval: ApprovalRule | None, max_duration: timedelta | None, errors: list[FieldError]
) -> BreakGlass | None:
    raw = spec.get("breakGlass")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        errors.append(
            FieldError("spec.breakGlass", "must be an object (allowed, maxDuration, reviewers, reviewWithin)")
        )
        return None
    settings = raw
    allowed = settings.get("allowed", False)
    if not isinstance(allowed, bool):
        errors.append(FieldError("spec.breakGlass.allowed", "must be true or false"))
    longest = duration_field(settings, "maxDuration", "spec.breakGlass.maxDuration", errors, required=False)
    limit = max_duration or LONGEST_GRANT
    if longest is not None and not SHORTEST_GRANT <= longest <= limit:
        errors.append(
            FieldError(
                "spec.breakGlass.maxDuration",
                f"{format_duration(longest)} must be between 5m and maxDuration",
            )
        )
    reviewers = string_list(
        settings, "reviewers", "spec.breakGlass.reviewers", errors, required=False, limit=MAX_PRINCIPALS
    )
    for index, reviewer in enumerate(reviewers):
        if (message := member_error(reviewer)) is not None:
            errors.append(FieldError(f"spec.breakGlass.reviewers[{index}]", message))
    if not reviewers and approval is not None:
        reviewers = list(approval.approvers)
    if allowed is True and not reviewers:
        errors.append(
            FieldError(
                "spec.breakGlass.reviewers",
                "name who reviews break-glass access (or give the grant an approval rule, whose approvers review)",
            )
        )
    within = duration_field(settings, "reviewWithin", "spec.breakGlass.reviewWithin", errors, required=False)
    if allowed is not True:
        return None
    return BreakGlass(
        longest or min(timedelta(hours=1), limit), tuple(reviewers), within or DEFAULT_REVIEW_WITHIN
    )


def _approval_step(approval: Body, path: str, errors: list[FieldError]) -> ApprovalStep:
    approvers = string_list(
        approval, "approvers", f"{path}.approvers", errors, required=True, limit=MAX_PRINCIPALS
    )
    for index, approver in enumerate(approvers):
        if (message := member_error(approver)) is not None:
            errors.append(FieldError(f"{path}.approvers[{index}]", message))
    min_approvals = approval.get("minApprovals", 1)
    if not isinstance(min_approvals, int) or isinstance(min_approvals, bool) or not 1 <= min_approvals <= 10:
        errors.append(FieldError(f"{path}.minApprovals", "must be a whole number from 1 to 10"))
        min_approvals = 1
    timeout = duration_field(approval, "timeout", f"{path}.timeout", errors, required=False)
    return ApprovalStep(tuple(approvers), min_approvals, timeout or DEFAULT_APPROVAL_TIMEOUT)
