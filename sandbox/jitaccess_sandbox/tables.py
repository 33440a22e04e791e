"""`kubectl get` output: meta.k8s.io/v1 Table responses built from a CRD's printer columns."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jitaccess_sandbox.crds import Crd

_FILTER = re.compile(r"\[\?\(@\.(\w+)==\"([^\"]*)\"\)\]")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: `.a.b`, `.a[0]`, `.a[?(@.k=="v")].b`."""
    current: list[Any] = [obj]
    for token in re.findall(r"\.\w+|\[\?\(@\.\w+==\"[^\"]*\"\)\]|\[\d+\]", path):
        following: list[Any] = []
        for item in current:
            if token.startswith("."):
                if isinstance(item, dict) and token[1:] in item:
                    following.append(item[token[1:]])
            elif token.startswith("[?"):
                match = _FILTER.fullmatch(token)
                if match and isinstance(item, list):
                    following.extend(
                        x for x in item if isinstance(x, dict) and str(x.get(match[1])) == match[2]
                    )
            elif isinstance(item, list) and int(token[1:-1]) < len(item):
                following.append(item[int(token[1:-1])])
        current = following
    if not current:
        return None
    return current[0] if len(current) == 1 else current


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """Kubernetes' short human durations: 42s, 5m, 3h, 2d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


# kube-apiserver's columns for the built-in kinds the sandbox serves (pkg/printers/internalversion):
# (name, priority, value of an object). Name comes first; every kind not named here gets Name, Age.
Cell = Callable[[dict[str, Any], datetime], Any]


def _created(obj: dict[str, Any], now: datetime) -> str:
    return age(obj.get("metadata", {}).get("creationTimestamp"), now)


def _event_last_seen(obj: dict[str, Any], now: datetime) -> str:
    seen = (
        obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("metadata", {}).get("creationTimestamp")
    )
    return age(seen, now)


def _event_object(obj: dict[str, Any], _: datetime) -> str:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


BUILTIN_COLUMNS: dict[str, list[tuple[str, int, Cell]]] = {
    "Event": [
        ("Last Seen", 0, _event_last_seen),
        ("Type", 0, lambda o, _: o.get("type", "")),
        ("Reason", 0, lambda o, _: o.get("reason", "")),
        ("Object", 0, _event_object),
        ("Message", 0, lambda o, _: o.get("message") or o.get("note") or ""),
        ("Count", 1, lambda o, _: o.get("count") or 1),
    ],
    "Namespace": [
        ("Status", 0, lambda o, _: (o.get("status") or {}).get("phase", "Active")),
        ("Age", 0, _created),
    ],
    "MutatingWebhookConfiguration": [
        ("Webhooks", 0, lambda o, _: len(o.get("webhooks") or [])),
        ("Age", 0, _created),
    ],
    "ValidatingWebhookConfiguration": [
        ("Webhooks", 0, lambda o, _: len(o.get("webhooks") or [])),
        ("Age", 0, _created),
    ],
    "Lease": [
        ("Holder", 0, lambda o, _: (o.get("spec") or {}).get("holderIdentity", "")),
        ("Age", 0, _created),
    ],
    "Role": [("Created At", 0, lambda o, _: o.get("metadata", {}).get("creationTimestamp", ""))],
    "ClusterRole": [("Created At", 0, lambda o, _: o.get("metadata", {}).get("creationTimestamp", ""))],
    "RoleBinding": [
        ("Role", 0, lambda o, _: f"{o.get('roleRef', {}).get('kind')}/{o.get('roleRef', {}).get('name')}"),
        ("Age", 0, _created),
    ],
    "ClusterRoleBinding": [
        ("Role", 0, lambda o, _: f"{o.get('roleRef', {}).get('kind')}/{o.get('roleRef', {}).get('name')}"),
        ("Age", 0, _created),
    ],
    "CustomResourceDefinition": [
        ("Created At", 0, lambda o, _: o.get("metadata", {}).get("creationTimestamp", ""))
    ],
}
_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace.",
}


def table(
    crd: Crd | None, kind: str, objects: list[dict[str, Any]], now: datetime, include: str = "Metadata"
) -> dict[str, Any]:
    """The Table kube-apiserver answers `kubectl get` with: a CRD's printer columns, or the
    built-in kind's; each row's object as `?includeObject=` asks (None, Metadata or Object)."""
    if crd is not None:
        cells: list[tuple[str, int, Cell]] = [
            (c["name"], c.get("priority", 0), _printer_cell(c)) for c in crd.printer_columns
        ]
    else:
        cells = BUILTIN_COLUMNS.get(kind, [("Age", 0, _created)])
    columns = [_NAME_COLUMN] + [
        {"name": name, "type": "string", "format": "", "priority": priority, "description": name}
        for name, priority, _ in cells
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {
            "cells": [obj.get("metadata", {}).get("name")] + [cell(obj, now) for _, _, cell in cells]
        }
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    }


def _printer_cell(column: dict[str, Any]) -> Cell:
    def cell(obj: dict[str, Any], now: datetime) -> Any:
        value = jsonpath(obj, column["jsonPath"])
        if column["type"] == "date":
            return age(value, now)
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return value

    return cell
