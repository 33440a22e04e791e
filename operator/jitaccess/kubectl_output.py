"""How `kubectl jit` prints: its tables, `-o json|yaml|name|wide` as kubectl prints them, the
`show` view (as `kubectl describe` lays one out) and errors as one `error: ...` line.

Everything a request carries is someone else's input, so nothing here reaches the terminal as
it was written: table cells and the `show` view go through `inert`, and JSON and YAML escape
every control, invisible and bidi character (still valid JSON and YAML, and the same data).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TextIO

import yaml
from kubernetes.client import ApiException
from urllib3.exceptions import HTTPError, MaxRetryError, NameResolutionError, NewConnectionError, SSLError

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.durations import format_duration
from jitaccess.api.objects import GROUP, NOT_PLAIN_TEXT, VERSION, Grant
from jitaccess.api.times import format_time
from jitaccess.kubectl_review import Awaited, age, inert, summary

OUTPUTS = ("json", "yaml", "name", "wide")
# `-o name` spells the resource as kubectl does: lowercase kind, then the API group.
RESOURCE = {
    "ActivationRequest": f"activationrequest.{GROUP}",
    "EligibleGrant": f"eligiblegrant.{GROUP}",
    "ActivationApproval": f"activationapproval.{GROUP}",
}


class EventLine(NamedTuple):
    """One Event of a request, as `show` lists it."""

    type: str
    reason: str
    when: datetime | None
    source: str
    message: str
    count: int


@dataclass(frozen=True)
class Shown:
    """What `kubectl jit show` tells of a request (gathered by `kubectl_commands.Cli.show`)."""

    body: Mapping[str, Any]
    grant: Grant | None
    awaited: Awaited | None  # None: not counted here (approvals unreadable, or no approval rule)
    approvals: list[Mapping[str, Any]] | None  # the decisions filed on it; None: not readable
    events: list[EventLine] | None  # None: Events not readable


# -- tables --------------------------------------------------------------------------------------


def table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
    """Columns as kubectl aligns them (three spaces apart); every cell printed inert."""
    cells = [[inert(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *cells, strict=False)]
    for row in [list(header), *cells]:
        line = "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        print(indent + line.rstrip(), file=out)


def request_table(
    out: TextIO, items: Sequence[Mapping[str, Any]], wide: bool, namespaced: bool, now: datetime
) -> None:
    header = ["NAME", "REQUESTER", "GRANT", "ROLES", "PHASE", "EXPIRES"]
    header += ["DURATION", "START", "REASON", "AGE"] if wide else []
    rows = []
    for item in items:
        spec, status = spec_of(item), status_of(item)
        row = [
            str(metadata_of(item).get("name", "")),
            str(spec.get("requester", "")),
            str(spec.get("grant", "")),
            ",".join(str(role) for role in spec.get("roles") or ["(all)"]),
            str(status.get("phase", "Pending")),
            str(status.get("expiresAt") or ""),
        ]
        if wide:
            ready = _condition(status, "Ready")
            row += [
                str(spec.get("duration") or "(grant's)"),
                str(spec.get("startTime") or ""),
                str(ready.get("reason") or ""),
                age(metadata_of(item).get("creationTimestamp"), now),
            ]
        rows.append(row)
    _with_namespaces(out, header, rows, items, namespaced)


def pending_table(out: TextIO, mine: Sequence[Awaited], wide: bool, namespaced: bool, now: datetime) -> None:
    header = ["NAME", "REQUESTER", "GRANT", "ROLES", "STEP", "AGE"]
    header += ["RESOURCE", "DURATION"] if wide else []
    rows = [
        [
            awaited.name,
            str(awaited.spec.requester or ""),
            awaited.grant.name,
            ",".join(awaited.terms.roles),
            awaited.step,
            age(metadata_of(awaited.body).get("creationTimestamp"), now),
            *([awaited.terms.resource, format_duration(awaited.terms.duration)] if wide else []),
        ]
        for awaited in mine
    ]
    _with_namespaces(out, header, rows, [awaited.body for awaited in mine], namespaced)


def grant_table(out: TextIO, grants: Sequence[Grant], wide: bool) -> None:
    header = ["GRANT", "RESOURCE", "ROLES", "APPROVAL", "MAX"]
    header += ["DEFAULT", "PRINCIPALS", "BREAK-GLASS", "UNTIL"] if wide else []
    rows = []
    for grant in grants:
        row = [
            grant.name,
            grant.resource,
            ",".join(grant.roles),
            grant.approval.describe() if grant.approval else "self",
            format_duration(grant.max_duration),
        ]
        if wide:
            row += [
                format_duration(grant.default_duration),
                ",".join(grant.principals),
                f"up to {format_duration(grant.break_glass.max_duration)}" if grant.break_glass else "no",
                format_time(grant.not_after) if grant.not_after else "",
            ]
        rows.append(row)
    table(out, header, rows)


def _with_namespaces(
    out: TextIO,
    header: list[str],
    rows: list[list[str]],
    items: Sequence[Mapping[str, Any]],
    namespaced: bool,
) -> None:
    """kubectl's -A puts a NAMESPACE column first."""
    if namespaced:
        header = ["NAMESPACE", *header]
        rows = [
            [str(metadata_of(item).get("namespace", "")), *row] for item, row in zip(items, rows, strict=True)
        ]
    table(out, header, rows)


# -- -o json | yaml | name -----------------------------------------------------------------------


def dump(
    out: TextIO, output: str, objects: Sequence[Mapping[str, Any]], kind: str, single: bool = False
) -> None:
    """`objects` (of `kind`) as `kubectl get -o json|yaml|name` prints them: one object as
    itself, several as a `List`; `name` as `activationrequest.jitaccess.dev/NAME` lines."""
    if output == "name":
        for body in objects:
            print(f"{RESOURCE[kind]}/{inert(metadata_of(body).get('name', ''))}", file=out)
        return
    # A list from a kube-apiserver may leave kind and apiVersion out of its items; kubectl adds them.
    typed = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **body} for body in objects]
    document: Any = (
        typed[0]
        if single and typed
        else {"apiVersion": "v1", "items": typed, "kind": "List", "metadata": {"resourceVersion": ""}}
    )
    print(to_json(document) if output == "json" else to_yaml(document), end="", file=out)


def to_json(document: Any) -> str:
    """JSON as kubectl prints it (sorted keys, four spaces), with every character that is not
    plain text \\u-escaped: json.dumps leaves DEL, C1 controls and bidi overrides as they are."""
    text = json.dumps(document, indent=4, sort_keys=True, ensure_ascii=False, default=str)
    return "".join(_json_escaped(ch) for ch in text) + "\n"


def _json_escaped(ch: str) -> str:
    # json.dumps escapes every control below 0x20 inside strings, so a raw newline is layout.
    if ch == "\n" or unicodedata.category(ch) not in NOT_PLAIN_TEXT:
        return ch
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells the rest as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


class _Dumper(yaml.SafeDumper):
    """Strings with anything but plain text are double-quoted, where YAML escapes them."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    quoted = any(unicodedata.category(ch) in NOT_PLAIN_TEXT for ch in value)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if quoted else None)


_Dumper.add_representer(str, _represent_text)


def to_yaml(document: Any) -> str:
    """YAML as kubectl prints it; UTF-8 letters as they are unless the text holds something
    that YAML would otherwise print raw (bidi overrides, U+2028): then all is escaped."""
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True)
    if any(ch != "\n" and unicodedata.category(ch) in NOT_PLAIN_TEXT for ch in text):
        text = yaml.dump(
            document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=False
        )
    return text


# -- show ----------------------------------------------------------------------------------------


def describe(out: TextIO, shown: Shown, now: datetime) -> None:
    """A request as `kubectl describe` lays an object out: facts, then Approvals, Conditions
    and Events as indented tables."""
    body, status = shown.body, status_of(shown.body)
    metadata, spec = metadata_of(body), spec_of(body)
    facts = [("name", metadata.get("name", "")), ("namespace", metadata.get("namespace", ""))]
    facts += [
        (label, value)
        for label, value in summary(body, shown.grant, shown.awaited)
        if label != "approvals so far" and label
    ]
    facts = [(label, _approval_line(shown) if label == "approval" else value) for label, value in facts]
    for label, key in (
        ("activated", "activatedAt"),
        ("expires", "expiresAt"),
        ("ended", "endedAt"),
        ("ended by", "endedBy"),
    ):
        if status.get(key):
            facts.append((label, str(status[key])))
    if spec.get("breakGlass") is True:
        facts.append(("break-glass", "yes: activated without approval, reviewed afterwards"))
    if spec.get("extends"):
        facts.append(("extends", str(spec["extends"])))
    width = max(len(label) for label, _ in facts) + 2
    for label, value in facts:
        print(f"{(label.title() + ':').ljust(width)}{inert(value)}", file=out)
    _approvals(out, shown, now)
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    _section(
        out,
        "Conditions",
        ["Type", "Status", "Reason", "Message"],
        [[str(c.get(k, "")) for k in ("type", "status", "reason", "message")] for c in conditions],
    )
    events = shown.events
    _section(
        out,
        "Events",
        ["Type", "Reason", "Age", "From", "Message"],
        [
            [
                e.type,
                e.reason,
                _ago(e.when, now) + (f" (x{e.count})" if e.count > 1 else ""),
                e.source,
                e.message,
            ]
            for e in (events or [])[-10:]  # the last ten, as the story's end is what is asked about
        ],
        none="<none>" if events is not None else "<you may not read Events in this namespace>",
    )


def _approval_line(shown: Shown) -> str:
    """How approval stands: counted here when the decisions are readable, else the operator's
    word for it (the Approved condition)."""
    if shown.awaited is not None:
        return shown.awaited.tally.summary()
    if shown.grant is not None and shown.grant.approval is None:
        return "none needed (the grant is self-approved)"
    approved = _condition(status_of(shown.body), "Approved")
    return str(approved.get("message") or "(cannot be counted)")


def _approvals(out: TextIO, shown: Shown, now: datetime) -> None:
    header = ["Decision", "Approver", "Age", "Counted", "Why", "Comment"]
    if shown.approvals is not None:
        rows = [
            [
                str(spec_of(a).get("decision", "?")),
                str(spec_of(a).get("approver", "?")),
                age(metadata_of(a).get("creationTimestamp"), now),
                _counted(status_of(a).get("counted")),
                str(status_of(a).get("message") or ""),
                str(spec_of(a).get("comment") or ""),
            ]
            for a in sorted(shown.approvals, key=lambda a: str(metadata_of(a).get("creationTimestamp") or ""))
        ]
        _section(out, "Approvals", header, rows)
        return
    # A requester may not read the decisions; the request's status lists those that count.
    counted = [a for a in status_of(shown.body).get("approvals") or [] if isinstance(a, Mapping)]
    rows = [
        [str(a.get(k, "?")) for k in ("decision", "approver")]
        + [age(a.get("time"), now), "yes", "", str(a.get("comment") or "")]
        for a in counted
    ]
    _section(out, "Approvals", header, rows, none="<none that count>")
    print(
        "  (those that count, from the request's status: you may not read its activationapprovals)", file=out
    )


def _counted(value: object) -> str:
    """status.counted as a word; absent while the operator has not yet judged the decision."""
    return "yes" if value is True else "no" if value is False else "not yet"


def _section(out: TextIO, title: str, header: list[str], rows: list[list[str]], none: str = "<none>") -> None:
    if not rows:
        print(f"{title}:  {none}", file=out)
        return
    print(f"{title}:", file=out)
    table(out, header, [["-" * len(h) for h in header], *rows], indent="  ")


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    found = [c for c in status.get("conditions") or [] if isinstance(c, Mapping) and c.get("type") == kind]
    return found[0] if found else {}


def _ago(when: datetime | None, now: datetime) -> str:
    return age(format_time(when), now) if when is not None else "<unknown>"


# -- errors --------------------------------------------------------------------------------------


def error_line(error: Exception, server: str) -> str:
    """`error` as kubectl reports it, on one line: `Error from server (Reason): message` for
    what the API server answered, `error: ...` for everything else."""
    if isinstance(error, ApiException):
        return _from_server(error)
    host = server.partition("://")[2] or server
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason  # type: ignore[assignment]
    if isinstance(error, NameResolutionError):
        return f"error: the server {host} could not be found (its name does not resolve) - is the kubeconfig right?"
    if isinstance(error, NewConnectionError) and "refused" in str(error).lower():
        return f"error: the connection to the server {host} was refused - did you specify the right host or port?"
    if isinstance(error, SSLError):
        return f"error: TLS with the server {host} failed: {_one_line(error)}"
    if isinstance(error, HTTPError):
        return f"error: cannot reach the server {host}: {_one_line(error)}"
    return f"error: {_one_line(error)}"


def _from_server(error: ApiException) -> str:
    try:
        status = json.loads(error.body or "")
    except ValueError:
        status = None
    if not isinstance(status, Mapping):
        status = {}
    reason = status.get("reason") or (error.reason or "").title().replace(" ", "") or "Unknown"
    message = status.get("message") or f"the server answered {error.status} {error.reason or ''}".strip()
    return f"Error from server ({inert(reason)}): {_one_line(message)}"


def _one_line(text: object) -> str:
    """Several lines joined with "; " (an admission message may list several problems), then inert."""
    return inert("; ".join(line.strip() for line in str(text).splitlines() if line.strip()))
