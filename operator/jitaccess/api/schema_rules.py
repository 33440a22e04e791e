"""The patterns and limits of crds/*.yaml, derived from the rules of api/: one source.

The CRDs carry these so that kube-apiserver (and the sandbox) refuse an obvious mistake at
`kubectl apply`, before any webhook runs; the Python rules in api/ check everything again. Both
come from here: `python -m jitaccess.api.schema_rules --write` puts the derived values into
crds/, and tests/unit/test_crds.py fails when a CRD's value is not the derived one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from jitaccess.api.durations import DURATION, format_duration
from jitaccess.api.limits import (
    K8S_NAME,
    LONGEST_GRANT,
    MAX_COMMENT,
    MAX_JUSTIFICATION,
    MAX_PATTERN,
    MAX_PRINCIPALS,
    MAX_ROLES,
    SHORTEST_GRANT,
)
from jitaccess.api.names import BASIC_ROLES, DOMAIN, EMAIL, RESOURCE, ROLE, WORKFORCE_OR_WORKLOAD


def _anchored(pattern: str) -> str:
    return f"^({pattern})$"


_MEMBER = _anchored(
    rf"(user|group|serviceAccount):{EMAIL.pattern}|domain:{DOMAIN.pattern}|{WORKFORCE_OR_WORKLOAD.pattern}"
)
_DURATION_LIMITS = (
    f"duration(self) >= duration('{format_duration(SHORTEST_GRANT)}') "
    f"&& duration(self) <= duration('{format_duration(LONGEST_GRANT)}')"
)
_NOT_BASIC = "!(self in [" + ", ".join(f"'{role}'" for role in sorted(BASIC_ROLES)) + "])"

# (CRD plural, path in spec or status, key) -> the value it must have.
RULES: dict[tuple[str, str, str], Any] = {
    ("eligiblegrants", "spec.resource", "pattern"): _anchored(RESOURCE.pattern),
    ("eligiblegrants", "spec.roles", "maxItems"): MAX_ROLES,
    ("eligiblegrants", "spec.roles[]", "pattern"): _anchored(ROLE.pattern),
    ("eligiblegrants", "spec.roles[]", "x-kubernetes-validations"): [_NOT_BASIC],
    ("eligiblegrants", "spec.principals", "maxItems"): MAX_PRINCIPALS,
    ("eligiblegrants", "spec.principals[]", "pattern"): _MEMBER,
    ("eligiblegrants", "spec.maxDuration", "pattern"): _anchored(DURATION.pattern),
    ("eligiblegrants", "spec.maxDuration", "x-kubernetes-validations"): [_DURATION_LIMITS],
    ("eligiblegrants", "spec.defaultDuration", "pattern"): _anchored(DURATION.pattern),
    ("eligiblegrants", "spec.defaultDuration", "x-kubernetes-validations"): [_DURATION_LIMITS],
    ("eligiblegrants", "spec.justification.pattern", "maxLength"): MAX_PATTERN,
    ("eligiblegrants", "spec.approval.approvers", "maxItems"): MAX_PRINCIPALS,
    ("eligiblegrants", "spec.approval.timeout", "pattern"): _anchored(DURATION.pattern),
    ("activationrequests", "spec.grant", "pattern"): _anchored(K8S_NAME.pattern),
    ("activationrequests", "spec.roles", "maxItems"): MAX_ROLES,
    ("activationrequests", "spec.roles[]", "pattern"): _anchored(ROLE.pattern),
    ("activationrequests", "spec.duration", "pattern"): _anchored(DURATION.pattern),
    ("activationrequests", "spec.justification", "maxLength"): MAX_JUSTIFICATION,
    ("activationapprovals", "spec.request", "pattern"): _anchored(K8S_NAME.pattern),
    ("activationapprovals", "spec.comment", "maxLength"): MAX_COMMENT,
}


def schema_at(schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The schema of `spec.roles[]` (the items of spec.roles) and the like."""
    node: Any = schema
    for part in path.split("."):
        items = part.endswith("[]")
        node = node["properties"][part.removesuffix("[]")]
        if items:
            node = node["items"]
    return node


def differences(directory: Path) -> Iterator[tuple[Path, str, str, Any, Any]]:
    """(file, path, key, found, derived) for every rule a CRD does not carry as derived."""
    for (plural, path, key), wanted in RULES.items():
        file = directory / f"{plural}.yaml"
        crd = yaml.safe_load(file.read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        found = schema_at(schema, path).get(key)
        if key == "x-kubernetes-validations":  # the CEL rules; their messages are prose, not rules
            found = [rule.get("rule") for rule in found or []]
        if found != wanted:
            yield file, path, key, found, wanted


def write(directory: Path) -> int:
    """Put the derived values into the CRD files, changing nothing else in them."""
    changed = 0
    for file, path, key, found, wanted in list(differences(directory)):
        text = file.read_text()
        if isinstance(wanted, str) and isinstance(found, str) and f"{key}: {_quoted(found)}" in text:
            text = text.replace(f"{key}: {_quoted(found)}", f"{key}: {_quoted(wanted)}", 1)
        elif isinstance(wanted, int) and found is not None:
            text = text.replace(f"{key}: {found}\n", f"{key}: {wanted}\n", 1)
        elif isinstance(wanted, list) and found and f'"{found[0]}"' in text:
            text = text.replace(f'"{found[0]}"', f'"{wanted[0]}"', 1)
        else:
            print(f"{file.name}: {path}.{key} is missing; add it by hand: {wanted!r}", file=sys.stderr)
            continue
        file.write_text(text)
        changed += 1
    return changed


def _quoted(text: str) -> str:
    """`text` as a single-quoted YAML scalar."""
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="put the derived values into the CRDs")
    parser.add_argument("--crds", type=Path, default=Path("crds"))
    args = parser.parse_args()
    if args.write:
        print(f"{write(args.crds)} value(s) written")
    stale = list(differences(args.crds))
    for file, path, key, found, wanted in stale:
        print(f"{file.name}: {path}.{key} is {found!r}, derived {wanted!r}")
    raise SystemExit(1 if stale else 0)


if __name__ == "__main__":
    main()
