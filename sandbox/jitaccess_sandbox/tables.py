"""`kubectl get` output: meta.k8s.io/v1 Table responses built from a CRD's printer columns."""

from __future__ import annotations

import re
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


def table(crd: Crd, objects: list[dict[str, Any]], resource_version: str) -> dict[str, Any]:
    columns = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "priority": 0,
            "description": "Name must be unique within a namespace.",
        }
    ]
    for column in crd.printer_columns:
        columns.append(
            {
                "name": column["name"],
                "type": "string" if column["type"] == "date" else column["type"],
                "format": "",
                "priority": column.get("priority", 0),
                "description": column.get("description", column["name"]),
            }
        )
    rows = []
    for obj in objects:
        cells: list[Any] = [obj.get("metadata", {}).get("name")]
        for column in crd.printer_columns:
            value = jsonpath(obj, column["jsonPath"])
            if column["type"] == "date":
                value = age(value)
            elif isinstance(value, list):
                value = ",".join(str(v) for v in value)
            cells.append(value)
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {}),
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }


def core_table(objects: list[dict[str, Any]], resource_version: str) -> dict[str, Any]:
    """Core resources (namespaces, events) get a plain Name/Age table."""
    rows = [
        {
            "cells": [o.get("metadata", {}).get("name"), age(o.get("metadata", {}).get("creationTimestamp"))],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o.get("metadata", {}),
            },
        }
        for o in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0, "description": "Name"},
            {"name": "Age", "type": "string", "format": "", "priority": 0, "description": "Age"},
        ],
        "rows": rows,
    }
