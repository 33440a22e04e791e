"""Reading the few request bodies kubectl sends in Kubernetes' protobuf encoding.

kubectl (1.3x) sends the built-in objects it builds itself, such as the SelfSubjectAccessReview
of `kubectl auth can-i` or the RoleBinding of `kubectl create rolebinding`, as
`application/vnd.kubernetes.protobuf`, and accepts JSON back. The encoding is the `k8s\\x00`
magic, then a runtime.Unknown envelope (typeMeta, raw) whose `raw` is the object in the field
numbers of k8s.io/api's generated.proto. The kinds the sandbox serves and kubectl creates this
way (access reviews, RBAC objects, Namespace) are read into the JSON the same object would be.
"""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _fields(data: bytes) -> dict[int, list[Any]]:
    """One message's fields: number -> values (ints for varints, bytes for length-delimited)."""
    found: dict[int, list[Any]] = {}
    position = 0

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            if position >= len(data) or shift > 63:
                raise ProtobufError("truncated varint")
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value = varint()
        elif wire == 2:
            length = varint()
            if position + length > len(data):
                raise ProtobufError("truncated field")
            value, position = data[position : position + length], position + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, position = data[position : position + size], position + size
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        found.setdefault(number, []).append(value)
    return found


def _string(fields: dict[int, list[Any]], number: int) -> str:
    values = fields.get(number) or [b""]
    return bytes(values[-1]).decode()


def _strings(fields: dict[int, list[Any]], number: int) -> list[str]:
    return [bytes(value).decode() for value in fields.get(number) or []]


def _message(fields: dict[int, list[Any]], number: int) -> dict[int, list[Any]] | None:
    values = fields.get(number)
    return _fields(bytes(values[-1])) if values else None


def _map(fields: dict[int, list[Any]], number: int) -> dict[str, str]:
    """map<string, string>: repeated entries of (1 key, 2 value)."""
    pairs = (_fields(bytes(entry)) for entry in fields.get(number) or [])
    return {_string(pair, 1): _string(pair, 2) for pair in pairs}


def _omit_empty(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value not in ("", [], {}, None)}


def _object_meta(fields: dict[int, list[Any]]) -> dict[str, Any]:
    """metav1.ObjectMeta: what a client sets when it creates an object."""
    return _omit_empty(
        {
            "name": _string(fields, 1),
            "generateName": _string(fields, 2),
            "namespace": _string(fields, 3),
            "resourceVersion": _string(fields, 6),
            "labels": _map(fields, 11),
            "annotations": _map(fields, 12),
            "finalizers": _strings(fields, 14),
        }
    )


def _label_selector(fields: dict[int, list[Any]]) -> dict[str, Any]:
    expressions = []
    for raw in fields.get(2) or []:
        requirement = _fields(bytes(raw))
        expression: dict[str, Any] = {"key": _string(requirement, 1), "operator": _string(requirement, 2)}
        if requirement.get(3):
            expression["values"] = _strings(requirement, 3)
        expressions.append(expression)
    return _omit_empty({"matchLabels": _map(fields, 1), "matchExpressions": expressions})


def _policy_rule(fields: dict[int, list[Any]]) -> dict[str, Any]:
    names = ("apiGroups", "resources", "resourceNames", "nonResourceURLs")
    rule: dict[str, Any] = {"verbs": _strings(fields, 1)}
    rule.update(_omit_empty({name: _strings(fields, number) for number, name in enumerate(names, start=2)}))
    return rule


def _subject(fields: dict[int, list[Any]]) -> dict[str, Any]:
    names = ("kind", "apiGroup", "name", "namespace")
    return _omit_empty({name: _string(fields, number) for number, name in enumerate(names, start=1)})


def _role_ref(fields: dict[int, list[Any]]) -> dict[str, Any]:
    return {"apiGroup": _string(fields, 1), "kind": _string(fields, 2), "name": _string(fields, 3)}


def _resource_attributes(fields: dict[int, list[Any]]) -> dict[str, str]:
    names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
    return {name: _string(fields, number) for number, name in enumerate(names, start=1)}


def _non_resource_attributes(fields: dict[int, list[Any]]) -> dict[str, str]:
    return {"path": _string(fields, 1), "verb": _string(fields, 2)}


def _access_review_spec(kind: str, fields: dict[int, list[Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    resource = _message(fields, 1)
    if resource is not None:
        spec["resourceAttributes"] = _resource_attributes(resource)
    other = _message(fields, 2)
    if other is not None:
        spec["nonResourceAttributes"] = _non_resource_attributes(other)
    if kind == "SubjectAccessReview":
        spec["user"] = _string(fields, 3)
        spec["groups"] = _strings(fields, 4)
        extra: dict[str, list[str]] = {}
        for entry in fields.get(5) or []:
            pair = _fields(bytes(entry))
            extra[_string(pair, 1)] = _strings(_message(pair, 2) or {}, 1)
        if extra:
            spec["extra"] = extra
        spec["uid"] = _string(fields, 6)
    return spec


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object of a kind the sandbox reads, as the JSON object it stands for."""
    if not body.startswith(_MAGIC):
        raise ProtobufError("not a Kubernetes protobuf object (no k8s magic)")
    envelope = _fields(body[len(_MAGIC) :])
    type_meta = _message(envelope, 1) or {}
    api_version, kind = _string(type_meta, 1), _string(type_meta, 2)
    fields = _fields(bytes((envelope.get(2) or [b""])[-1]))
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": _object_meta(_message(fields, 1) or {}),
    }
    if kind in ("SubjectAccessReview", "SelfSubjectAccessReview"):
        obj["spec"] = _access_review_spec(kind, _message(fields, 2) or {})
    elif kind == "SelfSubjectRulesReview":
        obj["spec"] = {"namespace": _string(_message(fields, 2) or {}, 1)}
    elif kind in ("Role", "ClusterRole"):
        obj["rules"] = [_policy_rule(_fields(bytes(raw))) for raw in fields.get(2) or []]
        aggregation = _message(fields, 3)
        if kind == "ClusterRole" and aggregation is not None:
            selectors = [_label_selector(_fields(bytes(raw))) for raw in aggregation.get(1) or []]
            obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        subjects = [_subject(_fields(bytes(raw))) for raw in fields.get(2) or []]
        if subjects:
            obj["subjects"] = subjects
        obj["roleRef"] = _role_ref(_message(fields, 3) or {})
    elif kind in ("Namespace", "SelfSubjectReview"):
        pass  # a Namespace's spec and status are the server's; a SelfSubjectReview has only a status
    else:
        raise ProtobufError(f"the sandbox does not read {kind or 'this kind'} in protobuf; send JSON")
    return obj
