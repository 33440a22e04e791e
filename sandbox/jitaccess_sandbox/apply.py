"""Server-side apply (`kubectl apply --server-side`, Argo CD, Flux), as far as they rely on it:
an apply creates the object when it does not exist; otherwise the applied configuration is merged
in, and the fields this manager applied last time but no longer does are removed (unless another
manager applied them too). Each manager's fields are kept in `metadata.managedFields` in FieldsV1
form. Not modelled: conflicts between managers (every apply acts as if `--force-conflicts`), and
lists merged by key (a list is one field, replaced whole)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from jitaccess_sandbox.writes import ApiRejection

APPLY_PATCH = "application/apply-patch+yaml"
MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit on a request body
# Under metadata, only these belong to an applied configuration (the rest is the server's).
_OWNABLE_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")


def is_apply(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip() == APPLY_PATCH


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: a few hundred bytes of nested aliases expand to gigabytes
    (kube-apiserver limits aliasing for the same reason, CVE-2019-11253)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise ApiRejection(400, "BadRequest", "YAML aliases are not accepted in an applied configuration")
        return super().compose_node(parent, index)


def configuration(body: bytes, parsed: Any) -> dict[str, Any]:
    """The applied configuration: kubectl sends JSON, other clients may send YAML."""
    if len(body) > MAX_BODY:
        raise ApiRejection(413, "RequestEntityTooLarge", "the request body is larger than 3 MiB")
    try:
        config = parsed if isinstance(parsed, dict) else yaml.load(body.decode() or "{}", Loader=_NoAliases)
    except yaml.YAMLError as error:
        raise ApiRejection(
            400, "BadRequest", f"the applied configuration is not YAML or JSON: {error}"
        ) from None
    if not isinstance(config, dict):
        raise ApiRejection(400, "BadRequest", "the applied configuration must be an object")
    return config


def field_set(config: dict[str, Any]) -> dict[str, Any]:
    """The fields a configuration sets, as FieldsV1 ({"f:spec": {"f:grant": {}}, ...})."""
    fields: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata" and isinstance(value, dict):
            owned = {k: v for k, v in value.items() if k in _OWNABLE_METADATA}
            if owned:
                fields["f:metadata"] = _fields(owned)
            continue
        fields[f"f:{key}"] = _fields(value) if isinstance(value, dict) else {}
    return fields


def _fields(value: dict[str, Any]) -> dict[str, Any]:
    return {f"f:{k}": _fields(v) if isinstance(v, dict) else {} for k, v in value.items()}


def apply(
    old: dict[str, Any], config: dict[str, Any], manager: str, api_version: str, time: str
) -> dict[str, Any]:
    """`old` with `config` applied by `manager`."""
    entries = list((old.get("metadata") or {}).get("managedFields") or [])
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None)
    others = [e for e in entries if e is not mine]
    new = copy.deepcopy(old)
    wanted = field_set(config)
    if mine is not None:
        for path in _paths(mine.get("fieldsV1") or {}):
            if path not in _paths(wanted) and not any(
                path in _paths(e.get("fieldsV1") or {}) for e in others
            ):
                _remove(new, path)
    for key, value in config.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata" and isinstance(value, dict):
            metadata = new.setdefault("metadata", {})
            for field in _OWNABLE_METADATA:
                if field in value:
                    metadata[field] = _merged(metadata.get(field), value[field])
            continue
        new[key] = _merged(new.get(key), value)
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": wanted,
    }
    new.setdefault("metadata", {})["managedFields"] = [*others, entry]
    return new


def created(config: dict[str, Any], manager: str, api_version: str, time: str) -> dict[str, Any]:
    """The object an apply creates."""
    new = copy.deepcopy(config)
    new.pop("status", None)
    new.setdefault("metadata", {})["managedFields"] = [
        {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version,
            "time": time,
            "fieldsType": "FieldsV1",
            "fieldsV1": field_set(config),
        }
    ]
    return new


def _merged(current: Any, applied: Any) -> Any:
    if isinstance(current, dict) and isinstance(applied, dict):
        result = dict(current)
        for key, value in applied.items():
            result[key] = _merged(current.get(key), value)
        return result
    return copy.deepcopy(applied)


def _paths(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for key, nested in fields.items():
        path = (*prefix, key.removeprefix("f:"))
        if nested:
            found |= _paths(nested, path)
        else:
            found.add(path)
    return found


def _remove(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    parent: Any = obj
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
