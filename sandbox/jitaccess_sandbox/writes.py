"""What a write does to a stored object, as kube-apiserver does it: merge and JSON patches, the
status subresource, resourceVersion preconditions, and the Status answers of refused writes."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp.web
import jsonpatch
from kmock._internal import rendering

from jitaccess_sandbox.crds import Crd

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class ApiRejection(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        causes: list[dict[str, str]] | None = None,
        subject: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details: dict[str, Any] = {**(subject or {}), **({"causes": causes} if causes else {})}

    def response(self) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self.status(), status=self.code)

    def status(self) -> dict[str, Any]:
        """The metav1.Status kube-apiserver answers a refused request with."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def check_name(kind: str, name: Any) -> None:
    """metadata.name of a new object: an RFC 1123 subdomain, as kube-apiserver requires."""
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise ApiRejection(
            422,
            "Invalid",
            f'{kind} "{str(name)[:80]}" is invalid: metadata.name: Invalid value: '
            f"{json.dumps(str(name)[:80])}: a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com'), at most 253 characters",
        )


def patched(
    old: dict[str, Any], request: rendering.Request, crd: Crd | None, next_version: Callable[[], str]
) -> dict[str, Any]:
    """`old` after the PATCH (merge or JSON patch) or PUT (replacement) `request`: each side of the
    status subresource changes only its own part, identity fields stay, generation and
    resourceVersion move on."""
    body = request.data
    if str(getattr(request.method, "value", request.method)).upper() == "PUT":
        if not isinstance(body, dict):
            raise ApiRejection(400, "BadRequest", "the object to replace with must be an object")
        new = copy.deepcopy(body)
    elif isinstance(body, list):
        try:
            new = jsonpatch.apply_patch(copy.deepcopy(old), body)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise ApiRejection(422, "Invalid", f"the JSON patch cannot be applied: {error}") from None
    elif isinstance(body, dict):
        new = merge_patch(old, body)
    else:
        raise ApiRejection(415, "UnsupportedMediaType", "send a JSON merge patch or a JSON patch")
    if crd is not None:  # the status subresource: each side changes only its own part
        if request.subresource == "status":
            new = (
                {**old, "status": new.get("status")}
                if "status" in new
                else {k: v for k, v in old.items() if k != "status"}
            )
            new["metadata"] = copy.deepcopy(old["metadata"])
        else:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
    return moved_on(old, new, next_version)


# What the server keeps in metadata, whatever a client sends (kube-apiserver ignores or refuses
# changes to them): an update keeps the stored values, a create gets the server's own.
SERVER_MANAGED = (
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "selfLink",
)


def moved_on(old: dict[str, Any], new: dict[str, Any], next_version: Callable[[], str]) -> dict[str, Any]:
    """`new` with the server's metadata of `old`; generation moves with the spec, resourceVersion
    with any change."""
    meta = new.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiRejection(400, "BadRequest", "metadata: must be an object")
    for key in SERVER_MANAGED:
        if key in old.get("metadata", {}):
            meta[key] = old["metadata"][key]
        else:
            meta.pop(key, None)
    check_metadata(new)
    if new.get("spec") != old.get("spec"):
        meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
    if new != old:
        meta["resourceVersion"] = next_version()
    return new


def check_metadata(obj: dict[str, Any]) -> None:
    """The types ObjectMeta has (kube-apiserver cannot even decode anything else: 400)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise ApiRejection(400, "BadRequest", "metadata: must be an object")
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            raise ApiRejection(
                400,
                "BadRequest",
                f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field} of type "
                "map[string]string",
            )
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        raise ApiRejection(
            400,
            "BadRequest",
            "json: cannot unmarshal into Go struct field ObjectMeta.metadata.finalizers of type []string",
        )
    owners = meta.get("ownerReferences")
    if owners is not None and (not isinstance(owners, list) or not all(isinstance(o, dict) for o in owners)):
        raise ApiRejection(
            400,
            "BadRequest",
            "json: cannot unmarshal into Go struct field ObjectMeta.metadata.ownerReferences of type "
            "[]v1.OwnerReference",
        )


def check_precondition(request: rendering.Request, old: dict[str, Any]) -> None:
    """A write that names a resourceVersion applies only to that version, as in kube-apiserver:
    optimistic concurrency (how leader election and other read-modify-writes stay safe)."""
    data = request.data
    wanted = ((data.get("metadata") or {}).get("resourceVersion") if isinstance(data, dict) else None) or ""
    current = str((old.get("metadata") or {}).get("resourceVersion", ""))
    if wanted and str(wanted) != current:
        resource = request.resource
        plural = f"{resource.plural}.{resource.group}" if resource and resource.group else str(resource)
        raise ApiRejection(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {plural} "{request.name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
        )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new` (lists and scalars are replaced whole)."""
    diff: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        diff[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_diff(before, value)
            if nested:
                diff[key] = nested
        elif key not in old or before != value:
            diff[key] = value
    return diff
