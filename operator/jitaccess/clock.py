"""The one source of time. Tests inject a ManualClock and jump it forward instead of sleeping."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """Real time plus an offset that only moves forward: `advance(timedelta(minutes=31))`."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self.offset += delta


class OffsetFileClock:
    """Real time plus the seconds written in a file, for an operator that runs as a process of
    its own under a test or the sandbox (`jitaccess run --clock-offset-file`): the test moves
    time by writing the file, as ManualClock.advance does in-process.

    The offset only moves forward (a smaller or unreadable value is ignored), so whoever can
    write the file can make the operator think it later, never earlier: bindings end sooner.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = timedelta(0)
        self._seen: int | None = None

    def now(self) -> datetime:
        try:
            changed = os.stat(self.path).st_mtime_ns
        except OSError:
            changed = None
        if changed is not None and changed != self._seen:
            self._seen = changed
            try:
                seconds = float(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                seconds = 0.0
            self.offset = max(self.offset, timedelta(seconds=seconds))
        return datetime.now(UTC) + self.offset
