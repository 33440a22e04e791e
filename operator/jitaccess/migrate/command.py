"""`jitaccess import`: read IAM policies (getIamPolicy only) and write EligibleGrant YAML + a report."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import yaml

from jitaccess.api.durations import DurationError, parse_duration
from jitaccess.api.names import member_error, resource_error
from jitaccess.iam.store import PolicyStore
from jitaccess.migrate.translate import Found, grants, read_policy


def run_import(
    resources: Sequence[str],
    endpoint: str | None,
    output: Path | None,
    max_duration: str,
    approvers: Sequence[str],
    activations: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    for resource in resources:
        if (why := resource_error(resource)) is not None:
            print(f"jitaccess import: --resource: {why}", file=err)
            return 2
    try:
        parse_duration(max_duration)
    except DurationError as error:
        print(f"jitaccess import: --max-duration: {error}", file=err)
        return 2
    for approver in approvers:
        if (why := member_error(approver)) is not None:
            print(f"jitaccess import: --approvers: {why}", file=err)
            return 2
    store = PolicyStore(endpoint)
    found = Found()
    for resource in resources:
        part = read_policy(resource, store.bindings(resource))
        found.eligible += part.eligible
        found.activations += part.activations
        found.untranslated += part.untranslated
    documents = grants(found.eligible, max_duration, approvers)
    text = yaml.safe_dump_all(documents, sort_keys=False) if documents else ""
    report = [
        f"{len(found.eligible)} eligible binding(s) in {len(resources)} resource(s) became {len(documents)} "
        "EligibleGrant(s).",
        *(f"NOT TRANSLATED: {line}" for line in found.untranslated),
    ]
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "grants.yaml").write_text(text)
        (output / "report.txt").write_text("\n".join(report) + "\n")
        print(f"wrote {output / 'grants.yaml'} and {output / 'report.txt'}", file=out)
    else:
        out.write(text)
    for line in report:
        print(line, file=err)
    if activations:
        print("Activations by Google's JIT Access (jitaccess never touches these):", file=out)
        for item in found.activations:
            window = " .. ".join(item.window) or "(no window)"
            print(f"  {item.resource}  {item.role}  {item.member}  {window}", file=out)
    return 0
