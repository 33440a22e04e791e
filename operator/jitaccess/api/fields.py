"""Reading the fields users write: each reader reports what is wrong into `errors` (with the
field's path) and returns what it could read, so one object's every mistake is told at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api.durations import DurationError, parse_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.times import parse_time

Body = Mapping[str, Any]


def time_field(spec: Body, key: str, errors: list[FieldError]) -> datetime | None:
    raw = spec.get(key)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        errors.append(FieldError(f"spec.{key}", "must be an RFC 3339 time like 2026-12-31T18:00:00Z"))
        return None


def duration_field(
    spec: Body, key: str, path: str, errors: list[FieldError], *, required: bool
) -> timedelta | None:
    raw = spec.get(key)
    if raw is None:
        if required:
            errors.append(FieldError(path, "is required (a duration like 2h)"))
        return None
    try:
        return parse_duration(raw)
    except DurationError as error:
        errors.append(FieldError(path, str(error)))
        return None


def string_list(
    spec: Body, key: str, path: str, errors: list[FieldError], *, required: bool, limit: int
) -> list[str]:
    raw = spec.get(key)
    if raw is None or raw == []:
        if required:
            errors.append(FieldError(path, "must list at least one entry"))
        return []
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        errors.append(FieldError(path, "must be a list of strings"))
        return []
    if len(raw) > limit:
        errors.append(FieldError(path, f"lists {len(raw)} entries; the limit is {limit}"))
        return []
    return list(raw)


def mapping(value: object) -> Body:
    return value if isinstance(value, Mapping) else {}
