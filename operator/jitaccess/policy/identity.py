"""Who is asking: the requester an ActivationRequest speaks for.

`spec.requester` is stamped by the mutating webhook from the caller's authenticated identity and
sealed with the rest of the spec (policy.admission); `lifecycle.decide` refuses a request whose
seal is missing or wrong before it ever gets here, so an attested `spec.requester` is trusted.
With no attestation key configured (admission off), it is trusted as written: see the README.
"""

from __future__ import annotations

from jitaccess.api.errors import FieldError
from jitaccess.api.objects import RequestSpec


def requester_of(spec: RequestSpec) -> tuple[str | None, list[FieldError]]:
    """The IAM member the request speaks for, or None with the reason it has none."""
    if spec.requester is None:
        return None, [
            FieldError("spec.requester", "is missing; it names who gets access (e.g. user:you@example.com)")
        ]
    return spec.requester, []
