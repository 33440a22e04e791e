"""`python -m jitaccess_sandbox.clocked_operator run [jitaccess run flags] --clock-offset-file F`:
the operator as a process of its own, whose clock a test or the sandbox moves by writing a file.

Not part of the operator's image: a production operator has no way to be told what time it is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jitaccess.cli import configure_logging, operator_config, parser, run_configured


class OffsetFileClock:
    """Real time plus the seconds written in a file, for an operator that runs as a process of
    its own under a test or the sandbox (`--clock-offset-file` here): the test moves
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


def main(argv: list[str] | None = None) -> None:
    clocks = argparse.ArgumentParser(add_help=False)
    clocks.add_argument("--clock-offset-file", type=Path, help="seconds to add to the wall clock")
    clocks.add_argument(
        "--lease-clock-offset-file", type=Path, help="the same, for the leader-election lease"
    )
    moved, rest = clocks.parse_known_args(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(rest)
    if args.command != "run":
        sys.exit("clocked_operator runs `jitaccess run` only")
    settings = operator_config(args)
    if moved.clock_offset_file:
        settings = replace(settings, clock=OffsetFileClock(moved.clock_offset_file))
    if moved.lease_clock_offset_file:
        settings = replace(settings, lease_clock=OffsetFileClock(moved.lease_clock_offset_file))
    configure_logging(args.verbose, args.log_format)
    try:
        asyncio.run(run_configured(settings, args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
