"""RFC 3339 timestamps in UTC with second precision: the one time format of the API and of IAM."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(text: object) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; ValueError says what is expected."""
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp like 2026-11-24T09:00:00Z")
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp like 2026-11-24T09:00:00Z") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone, e.g. a trailing Z for UTC")
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """`2026-11-24T09:00:00Z`: UTC, second precision (sub-seconds are truncated, never rounded up)."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate_to_second(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)
