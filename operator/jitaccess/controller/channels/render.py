"""The words of a notice, shared by every channel: a subject line and the facts, as text."""

from __future__ import annotations

import unicodedata

from jitaccess.policy.notices import Told


def inert(text: str, limit: int = 2000) -> str:
    """User-typed text made safe to show anywhere: control characters (escape sequences, bidi
    overrides, line breaks that forge lines) replaced, and cut to `limit`."""
    shown = "".join(
        " " if ch in "\n\r\t" else "\ufffd" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text
    )
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def facts(told: Told) -> list[tuple[str, str]]:
    """The facts a person needs to judge it, in order; values are plain text (escape per channel)."""
    rows = [
        ("Request", f"{told.namespace}/{told.name}"),
        ("Requester", told.requester),
        ("Grant", told.grant),
        ("Resource", told.resource),
        ("Roles", ", ".join(told.roles)),
        ("Duration", told.duration),
    ]
    if told.start and told.end:
        rows.append(("Window", f"{told.start} to {told.end}"))
    rows.append(("Justification", inert(told.justification) or "(none)"))
    if told.step:
        rows.append(("Approval step", told.step))
    rows.append(("Approved by", ", ".join(told.approved_by) or "nobody yet"))
    return rows


def subject(told: Told) -> str:
    return inert(f"[jitaccess] {told.headline}", 200)


def text(told: Told) -> str:
    lines = [told.headline, "", inert(told.notice.message), ""]
    lines += [f"{label}: {value}" for label, value in facts(told)]
    lines += ["", "To act:" if told.answerable else "To see more:"]
    lines += [f"  {command}" for command in told.commands()]
    return "\n".join(lines) + "\n"
