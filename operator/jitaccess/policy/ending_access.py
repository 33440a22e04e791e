"""Who may end a request's access, and how it is recorded (pure; the webhooks call it).

Like approving a CertificateSigningRequest: the requester may revoke (`spec.revoke`) or delete
their own request; anyone else needs the verb `revoke` on `activationrequests.jitaccess.dev`
(`Admission.needs`, checked by the webhook with a SubjectAccessReview). Who did it is sealed into
the request (`policy.records`). Any other change to a request's metadata that could keep it from
being recorded or ended is refused here too (`records.metadata_problem`).

The web console (`IdentitySettings.console_submitters`) revokes for the person Identity-Aware
Proxy verified, whom it names in the annotation `jitaccess.dev/on-behalf-of` with the same patch:
only for the request's own requester (it has no verb `revoke` of its own, and is given none here),
recorded as that person *via* the console. Nobody else may set that annotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.names import normal_member
from jitaccess.api.times import truncate_to_second
from jitaccess.policy.admission import Admission, Caller, IdentitySettings, admit_spec_update, member_of
from jitaccess.policy.conditions import REVIEWED
from jitaccess.policy.records import (
    REVOKED_BY,
    Actor,
    Identity,
    actor_payload,
    metadata_problem,
    open_record,
    owner_changes,
    read_records,
    reserved_changes,
    seal_record,
)

REVOKE_VERB = "revoke"
# Whom the console revokes for (a `user:` member); set by the console with spec.revoke, never changed.
ON_BEHALF_OF = "jitaccess.dev/on-behalf-of"
# Kubernetes' own controllers that delete objects when their namespace or owner goes (as their
# service accounts under --use-service-account-credentials, or as the controller manager).
CLUSTER_DELETERS = frozenset(
    {
        "system:serviceaccount:kube-system:namespace-controller",
        "system:serviceaccount:kube-system:generic-garbage-collector",
        "system:kube-controller-manager",
    }
)


def admit_request_change(
    new: Mapping[str, Any],
    old: Mapping[str, Any],
    caller: Caller,
    settings: IdentitySettings,
    operator: str,
    key: bytes,
    now: datetime,
) -> Admission:
    """An UPDATE of an ActivationRequest: only `spec.revoke` may change (false to true), only the
    operator may touch `jitaccess.dev/` metadata, and revoking someone else's request needs the
    verb revoke. On the validating pass, `new` may carry the revoked-by stamp the mutating pass made.
    """
    if caller.username == operator:
        return Admission(True)
    verdict = admit_spec_update(new, old)
    if not verdict.allowed:
        return verdict
    person, refusal = console_person(new, old, caller, settings)
    if refusal is not None:
        return Admission(False, refusal)
    named = f"metadata.annotations[{ON_BEHALF_OF}]"
    recorded_as = (person, caller.username) if person is not None else (caller.username, "")
    reserved = [
        change
        for change in reserved_changes(old, new)
        if not (person is not None and change == named) and not _own_stamp(change, new, old, recorded_as, key)
    ] + owner_changes(old, new)
    if reserved:
        return Admission(
            False,
            f"{reserved[0]}: only the jitaccess operator ({operator or 'its service account'}) may change it",
        )
    if problem := metadata_problem(old, new):
        return Admission(False, problem)
    was = bool(spec_of(old).get("revoke"))
    if was or not spec_of(new).get("revoke"):
        return Admission(True)
    return _ending(old, caller, settings, now, person)


def console_person(
    new: Mapping[str, Any], old: Mapping[str, Any], caller: Caller, settings: IdentitySettings
) -> tuple[str | None, str | None]:
    """The person the console revokes for with this change, and why it may not; (None, None) when
    the caller is not the console or the change is no revocation (then the annotation is the
    operator's like any `jitaccess.dev/` one, and changing it is refused)."""
    if caller.username not in settings.console_submitters:
        return None, None
    if bool(spec_of(old).get("revoke")) or not spec_of(new).get("revoke"):
        return None, None
    field = f"metadata.annotations[{ON_BEHALF_OF}]"
    named = (metadata_of(new).get("annotations") or {}).get(ON_BEHALF_OF)
    if not isinstance(named, str) or not named.startswith("user:") or ON_BEHALF_OF in _annotations(old):
        return None, (
            f"{field}: {caller.username} is the console; it revokes only for the person it names "
            "there (user:EMAIL), once"
        )
    requester = str(spec_of(old).get("requester") or "")
    if normal_member(named) != normal_member(requester):
        return None, (
            f"{field}: {named} is not the requester of this request ({requester or 'nobody'}); through the "
            "console a person revokes only their own access"
        )
    return normal_member(named), None


def _annotations(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return metadata_of(body).get("annotations") or {}


def admit_request_deletion(
    old: Mapping[str, Any],
    caller: Caller,
    settings: IdentitySettings,
    operator: str,
    key: bytes,
    now: datetime,
) -> Admission:
    """A DELETE of an ActivationRequest: its requester may; anyone else needs the verb revoke,
    unless the request has ended already (then only its history goes, and RBAC's delete decides)."""
    if caller.username == operator:
        return Admission(True)
    if caller.username in CLUSTER_DELETERS:
        # Deleting the namespace (or an owner) deletes its requests: whoever could do that decided.
        return Admission(True, actor=Actor(caller.username, truncate_to_second(now), as_requester=False))
    records = read_records(metadata_of(old), key)
    if records.held is not None and records.held.review_due is not None and not _reviewed(old):
        name = metadata_of(old).get("name")
        return Admission(
            False,
            f"{name} is break-glass access not yet reviewed; it stays until one of its reviewers reviews it "
            f"(kubectl jit review {name} --comment ...)",
        )
    if records.ended is not None:
        return Admission(True)
    return _ending(old, caller, settings, now)


def _reviewed(request: Mapping[str, Any]) -> bool:
    """Shown reviewed (only the operator writes status; refusing on a status that says otherwise is
    the safe side)."""
    conditions = status_of(request).get("conditions") or ()
    return any(
        isinstance(c, Mapping) and c.get("type") == REVIEWED and c.get("status") == "True" for c in conditions
    )


def _ending(
    old: Mapping[str, Any],
    caller: Caller,
    settings: IdentitySettings,
    now: datetime,
    person: str | None = None,
) -> Admission:
    requester = str(spec_of(old).get("requester") or "")
    when = truncate_to_second(now)
    if caller.username in settings.console_submitters:
        # The console acts only for the requester it names (console_person); never on its own.
        if person is None:
            return Admission(
                False,
                f"{caller.username} is the console: it may end access only by revoking for the requester, "
                f"named in metadata.annotations[{ON_BEHALF_OF}]",
            )
        return Admission(True, actor=Actor(person, when, as_requester=True, via=caller.username))
    member, _ = member_of(caller, settings)
    if member is not None and requester and normal_member(member) == normal_member(requester):
        return Admission(True, actor=Actor(caller.username, when, as_requester=True))
    return Admission(True, needs=REVOKE_VERB, actor=Actor(caller.username, when, as_requester=False))


def revoke_refusal(old: Mapping[str, Any], caller: Caller, action: str) -> str:
    """Why `caller` may not revoke or delete someone else's request."""
    requester = spec_of(old).get("requester") or "someone else"
    return (
        f"{caller.username} may not {action} this request: it is {requester}'s, and ending someone else's "
        f"access needs the verb {REVOKE_VERB} on activationrequests.jitaccess.dev in this namespace "
        "(ClusterRole jitaccess-revoker or jitaccess-admin)"
    )


def revoked_by_stamp(old: Mapping[str, Any], actor: Actor, key: bytes) -> tuple[str, str]:
    """The sealed revoked-by annotation (name, value) for this request."""
    return REVOKED_BY, seal_record(REVOKED_BY, actor_payload(actor), _identity_of(old), key)


def _own_stamp(
    change: str, new: Mapping[str, Any], old: Mapping[str, Any], recorded_as: tuple[str, str], key: bytes
) -> bool:
    """Is `change` the revoked-by stamp our mutating webhook just made for this revoke, naming
    `recorded_as` (the user, and the console they acted through or "")?"""
    if change != f"metadata.annotations[{REVOKED_BY}]":
        return False
    if REVOKED_BY in _annotations(old):
        return False
    if bool(spec_of(old).get("revoke")) or not spec_of(new).get("revoke"):
        return False
    value = _annotations(new).get(REVOKED_BY)
    payload = open_record(value, REVOKED_BY, _identity_of(old), key)
    return payload is not None and (payload.get("user"), payload.get("via", "")) == recorded_as


def _identity_of(body: Mapping[str, Any]) -> Identity:
    metadata = metadata_of(body)
    return Identity(
        str(metadata.get("namespace", "")), str(metadata.get("name", "")), str(metadata.get("uid", ""))
    )
