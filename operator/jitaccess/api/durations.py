"""Go-style durations (`30m`, `1h30m`, `90s`) as used by every duration field of the API.

Kubernetes users know this form from Pod and CRD fields; it is also what `kubectl explain`
shows. Only h, m and s units exist here: sub-second precision is meaningless for IAM windows.
"""

from __future__ import annotations

import re
from datetime import timedelta

DURATION = re.compile(r"(?:(\d{1,4})h)?(?:(\d{1,6})m)?(?:(\d{1,8})s)?")
# No duration in this API is longer than a week; the cap keeps arithmetic and messages sane.
LONGEST = timedelta(days=366)


class DurationError(ValueError):
    """A string that is not a duration in the accepted form."""


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m` into a timedelta; raise DurationError saying what form is expected."""
    if not isinstance(text, str):
        raise DurationError(f"must be a string like 30m or 1h30m, not {type(text).__name__}")
    match = DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise DurationError(f"{_shorten(text)!r} is not a duration; use a form like 30m, 2h or 1h30m")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    value = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise DurationError(f"{text!r} must be longer than zero")
    if value > LONGEST:
        raise DurationError(f"{text!r} is longer than {format_duration(LONGEST)}")
    return value


def format_duration(value: timedelta) -> str:
    """The shortest Go-style spelling of a duration: 1h30m, 2h, 45s."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (
        (f"{hours}h" if hours else "")
        + (f"{minutes}m" if minutes else "")
        + (f"{seconds}s" if seconds else "")
    )
    return text or "0s"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
