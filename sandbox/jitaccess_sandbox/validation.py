"""Validate an object against a CRD's structural schema and CEL rules, as kube-apiserver does.

Covers what our CRDs use: types, required, properties (unknown fields refused, as with
`fieldValidation=Strict`), items, enum, pattern, min/max items and length, minimum/maximum,
date-time format, and `x-kubernetes-validations` (CEL via cel-python; rules that mention
`oldSelf` run only on update, where the old value exists).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any

import celpy

_MISSING = object()
_cel = celpy.Environment()


@cache
def cel_program(rule: str) -> Any:
    """A CEL expression, compiled once."""
    return _cel.program(_cel.compile(rule))


def validate(schema: dict[str, Any], new: Any, old: Any = _MISSING) -> list[str]:
    """Every violation, as `path: message` lines like kube-apiserver's (empty when valid)."""
    errors: list[str] = []
    body = (
        {key: value for key, value in new.items() if key in ("spec", "status")}
        if isinstance(new, dict)
        else new
    )
    old_body = (
        {key: value for key, value in old.items() if key in ("spec", "status")}
        if isinstance(old, dict)
        else _MISSING
    )
    properties = schema.get("properties", {})
    for key in ("spec", "status"):
        if key in body and key in properties:
            _check(
                properties[key],
                body[key],
                old_body.get(key, _MISSING) if old_body is not _MISSING else _MISSING,
                key,
                errors,
            )
    for key in schema.get("required", []):
        if key not in body and key in ("spec",):
            errors.append(f"{key}: Required value")
    return errors


def _check(schema: dict[str, Any], value: Any, old: Any, path: str, errors: list[str]) -> None:
    if value is None:
        return
    if old is not _MISSING and value == old:
        # Validation ratcheting (kube-apiserver ≥ 1.30, CRDValidationRatcheting): a value an update
        # leaves unchanged is not validated again, so status writes do not re-run spec rules.
        return
    kind = schema.get("type")
    if not _type_ok(kind, value):
        errors.append(f"{path}: Invalid value: {_show(value)}: {path} in body must be of type {kind}")
        return
    before = len(errors)
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        errors.append(f"{path}: Unsupported value: {_show(value)}: supported values: {allowed}")
    if kind == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: Too long: may not be more than {schema['maxLength']} bytes")
        elif "pattern" in schema and re.search(schema["pattern"], value) is None:
            errors.append(
                f"{path}: Invalid value: {_show(value)}: {path} in body should match '{schema['pattern']}'"
            )
        if schema.get("format") == "date-time" and not _is_datetime(value):
            errors.append(f"{path}: Invalid value: {_show(value)}: {path} in body must be of type date-time")
    if kind == "integer":
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(
                f"{path}: Invalid value: {value}: {path} in body should be greater than or equal to "
                f"{schema['minimum']}"
            )
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(
                f"{path}: Invalid value: {value}: {path} in body should be less than or equal to "
                f"{schema['maximum']}"
            )
    if kind == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                f"{path}: Invalid value: {len(value)}: {path} in body should have at least "
                f"{schema['minItems']} items"
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
        if schema.get("x-kubernetes-list-type") == "set" and len({repr(v) for v in value}) != len(value):
            errors.append(f"{path}: Duplicate value: each entry may appear only once")
        for index, item in enumerate(value):
            _check(schema.get("items", {}), item, _MISSING, f"{path}[{index}]", errors)
    if kind == "object":
        properties = schema.get("properties")
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}.{key}: Required value")
        if properties is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for key in value:
                if key not in properties:
                    errors.append(f'{path}: unknown field "{path}.{key}"')
        for key, sub in (properties or {}).items():
            if key in value:
                old_sub = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
                _check(sub, value[key], old_sub, f"{path}.{key}", errors)
    if len(errors) > before:
        return  # CEL rules judge values the schema accepts; one error per mistake is enough
    for rule in schema.get("x-kubernetes-validations", []):
        _run_rule(rule, value, old, path, errors)


def _run_rule(rule: dict[str, Any], value: Any, old: Any, path: str, errors: list[str]) -> None:
    text = rule["rule"]
    uses_old = "oldSelf" in text
    if uses_old and old is _MISSING:
        return
    activation = {"self": celpy.json_to_cel(value)}
    if uses_old:
        activation["oldSelf"] = celpy.json_to_cel(old)
    try:
        result = cel_program(text).evaluate(activation)
    except Exception as error:  # a CEL runtime error fails validation, as in kube-apiserver
        errors.append(f"{path}: Invalid value: {_show(value)}: {rule.get('message') or text} ({error})")
        return
    if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
        where = path + rule.get("fieldPath", "")
        errors.append(f"{where}: Invalid value: {rule.get('message') or 'failed rule: ' + text}")


def _type_ok(kind: str | None, value: Any) -> bool:
    return {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
    }.get(kind or "", True)


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return "T" in value.upper()


def _show(value: Any, limit: int = 80) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
