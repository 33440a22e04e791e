"""Who is asking: the requester an ActivationRequest speaks for.

Until the admission webhooks attest identity (issue #3), the reconciler trusts
`spec.requester` as written. This is the one function that decision is made in, so replacing
it with attestation checks changes the answer everywhere at once.
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
