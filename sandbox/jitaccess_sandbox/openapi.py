"""OpenAPI v3 documents for kubectl: field validation, `kubectl explain`, no protobuf v2 needed.

Recipe from ../shared/design/TESTING.md: /openapi/v3 names one document per group-version;
each lists the collection (post) and item (patch) paths with a `fieldValidation` parameter and
`x-kubernetes-group-version-kind`, plus the CRDs' own schemas in components.schemas.
"""

from __future__ import annotations

from typing import Any

from jitaccess_sandbox.crds import Crd

# Core kinds the sandbox serves, with open schemas: kubectl validates against them but we do not.
CORE_KINDS = {"namespaces": ("Namespace", False), "events": ("Event", True)}
# Built-in kinds by group version, for `kubectl apply` of manifests (group, version, schema package).
BUILTIN_KINDS: dict[tuple[str, str, str], dict[str, tuple[str, bool]]] = {
    ("", "v1", "core"): CORE_KINDS,
    ("rbac.authorization.k8s.io", "v1", "rbac"): {
        "roles": ("Role", True),
        "rolebindings": ("RoleBinding", True),
        "clusterroles": ("ClusterRole", False),
        "clusterrolebindings": ("ClusterRoleBinding", False),
    },
}


def index(crds: tuple[Crd, ...]) -> dict[str, Any]:
    versions = sorted({f"{crd.group}/{crd.version}" for crd in crds})
    versions += [f"{group}/{version}" for group, version, _ in BUILTIN_KINDS if group]
    paths = {f"apis/{gv}": {"serverRelativeURL": f"/openapi/v3/apis/{gv}"} for gv in versions}
    paths["api/v1"] = {"serverRelativeURL": "/openapi/v3/api/v1"}
    return {"paths": paths}


def core_document() -> dict[str, Any]:
    return builtin_document("", "v1") or {}


def builtin_document(group: str, version: str) -> dict[str, Any] | None:
    """The document of a built-in group version, or None if the sandbox serves none of it."""
    chosen = [
        (package, kinds) for (g, v, package), kinds in BUILTIN_KINDS.items() if (g, v) == (group, version)
    ]
    if not chosen:
        return None
    ((package, kinds),) = chosen
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    for plural, (kind, namespaced) in kinds.items():
        gvk = {"group": group, "version": version, "kind": kind}
        operation = {
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "x-kubernetes-group-version-kind": gvk,
        }
        prefix = f"{base}/namespaces/{{namespace}}" if namespaced else base
        paths[f"{prefix}/{plural}"] = {"post": operation}
        paths[f"{prefix}/{plural}/{{name}}"] = {"patch": operation}
        schemas[f"io.k8s.api.{package}.{version}.{kind}"] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [gvk],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "jitaccess sandbox", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def document(crds: tuple[Crd, ...], group: str, version: str) -> dict[str, Any] | None:
    chosen = [crd for crd in crds if crd.group == group and crd.version == version]
    if not chosen:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for crd in chosen:
        gvk = {"group": crd.group, "version": crd.version, "kind": crd.kind}
        reference = {"$ref": f"#/components/schemas/{_schema_name(crd)}"}
        operation = {
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"content": {"application/json": {"schema": reference}}}},
        }
        base = f"/apis/{crd.group}/{crd.version}"
        prefix = f"{base}/namespaces/{{namespace}}" if crd.namespaced else base
        paths[f"{prefix}/{crd.plural}"] = {"post": {**operation, "x-kubernetes-action": "post"}}
        paths[f"{prefix}/{crd.plural}/{{name}}"] = {
            "patch": {**operation, "x-kubernetes-action": "patch"},
            "get": {**operation, "x-kubernetes-action": "get"},
        }
        schemas[_schema_name(crd)] = {**crd.schema, "x-kubernetes-group-version-kind": [gvk]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "jitaccess sandbox", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _schema_name(crd: Crd) -> str:
    reversed_group = ".".join(reversed(crd.group.split(".")))
    return f"{reversed_group}.{crd.version}.{crd.kind}"
