"""Keeping ActivationApprovals in step with their request: each owned by the request it was given
for (so deleting the request deletes them), and each told whether it counts and why not."""

from __future__ import annotations

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.objects import GROUP, VERSION
from jitaccess.controller.cache import Cache, RequestKey
from jitaccess.controller.kube import Kube
from jitaccess.policy.steps import ApprovalReport


async def adopt_approvals(kube: Kube, cache: Cache, key: RequestKey) -> None:
    """Each approval is owned by its request, so deleting the request deletes its approvals."""
    request = cache.requests.get(key)
    uid = metadata_of(request).get("uid")
    if not uid:
        return
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationRequest",
        "name": key[1],
        "uid": uid,
        "blockOwnerDeletion": False,
        "controller": False,
    }
    for name, body in list(cache.approvals.get(key, {}).items()):
        owners = metadata_of(body).get("ownerReferences") or []
        if any(o.get("uid") == uid for o in owners):
            continue
        if spec_of(body).get("requestUID") not in (None, uid):
            continue  # given for another object of that name: not this request's to delete
        updated = await kube.patch_approval(key[0], name, {"metadata": {"ownerReferences": [*owners, owner]}})
        if updated is not None:
            cache.approvals.setdefault(key, {})[name] = updated


async def report_approvals(
    kube: Kube, cache: Cache, key: RequestKey, reports: tuple[ApprovalReport, ...]
) -> None:
    """Tell each approval whether it counts, and why not; written only when that changed."""
    for report in reports:
        body = cache.approvals.get(key, {}).get(report.name)
        if body is None:
            continue
        wanted = {"counted": report.counted, "message": report.message}
        status = status_of(body)
        if all(status.get(k) == v for k, v in wanted.items()):
            continue
        updated = await kube.patch_approval_status(key[0], report.name, wanted)
        if updated is not None:
            cache.approvals.setdefault(key, {})[report.name] = updated
