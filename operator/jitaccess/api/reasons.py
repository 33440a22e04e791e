"""Every `reason` jitaccess writes, in one place: of Events, of the Ready, Approved,
RevocationFailing and BindingsPresent conditions, and of the audit log. Part of the API: alerts,
dashboards and GitOps health checks match on them."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # On the way to access.
    APPROVAL_REQUIRED = "ApprovalRequired"
    APPROVAL_RECORDED = "ApprovalRecorded"
    APPROVED = "Approved"
    WAITING = "Waiting"  # the Approved condition while approvals are missing
    SCHEDULED = "Scheduled"
    ACTIVATING = "Activating"
    ACTIVATED = "Activated"
    # Ends.
    EXPIRED = "Expired"
    WINDOW_PASSED = "WindowPassed"
    APPROVAL_TIMEOUT = "ApprovalTimeout"
    DENIED = "Denied"
    WITHDRAWN = "Withdrawn"
    REVOKED = "Revoked"  # spec.revoke with no recorded actor (admission was bypassed)
    REVOKED_BY_REQUESTER = "RevokedByRequester"
    REVOKED_BY_ADMIN = "RevokedByAdmin"
    DELETED = "Deleted"
    ELIGIBILITY_CHANGED = "EligibilityChanged"
    ELIGIBILITY_REMOVED = "EligibilityRemoved"
    ELIGIBILITY_EXPIRED = "EligibilityExpired"  # the grant's notAfter passed
    RECORD_TAMPERED = "RecordTampered"
    IAM_REFUSED = "IamRefused"
    # Refusals.
    GRANT_NOT_FOUND = "GrantNotFound"
    NOT_ELIGIBLE = "NotEligible"
    NOT_YET_ELIGIBLE = "NotYetEligible"  # before the grant's notBefore
    INVALID_REQUEST = "InvalidRequest"
    INVALID_SPEC = "InvalidSpec"
    NO_REQUESTER = "NoRequester"
    ADMISSION_BYPASSED = "AdmissionBypassed"
    EXTENDED = "Extended"  # continued by an extension
    CONTINUOUS_LIMIT = "ContinuousLimit"  # an extension past the grant's maxContinuousDuration
    # Break-glass.
    BREAK_GLASS_ACTIVATED = "BreakGlassActivated"
    REVIEW_REQUIRED = "ReviewRequired"
    REVIEW_OVERDUE = "ReviewOverdue"
    REVIEWED = "Reviewed"
    REVOKED_BY_REVIEWER = "RevokedByReviewer"
    # Grants.
    VALID = "Valid"
    APPROVAL_UNSATISFIABLE = "ApprovalUnsatisfiable"
    ROLE_NOT_GRANTABLE = "RoleNotGrantable"
    # IAM as the sweeper and the removal retries find it.
    REVOCATION_FAILING = "RevocationFailing"
    REMOVED = "Removed"
    BINDING_REMOVED_EXTERNALLY = "BindingRemovedExternally"
    LEFTOVER_BINDING_REMOVED = "LeftoverBindingRemoved"


# What the audit log records with severity ALERT (break-glass access, and its review overdue).
ALERTS = frozenset({Reason.BREAK_GLASS_ACTIVATED, Reason.REVIEW_OVERDUE})
