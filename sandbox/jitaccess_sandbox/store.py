"""What the sandbox API serves besides our CRDs, and how its store is searched: kmock's object
store indexed by kind, and label and field selectors for lists."""

from __future__ import annotations

from typing import Any

CORE_RESOURCES = {
    "v1/namespaces": {
        "kind": "Namespace",
        "singular": "namespace",
        "namespaced": False,
        "shortnames": {"ns"},
    },
    "v1/events": {"kind": "Event", "singular": "event", "namespaced": True, "shortnames": {"ev"}},
    "events.k8s.io/v1/events": {
        "kind": "Event",
        "singular": "event",
        "namespaced": True,
        "shortnames": {"ev"},
    },
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations": {
        "kind": "MutatingWebhookConfiguration",
        "singular": "mutatingwebhookconfiguration",
        "namespaced": False,
    },
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations": {
        "kind": "ValidatingWebhookConfiguration",
        "singular": "validatingwebhookconfiguration",
        "namespaced": False,
    },
    "coordination.k8s.io/v1/leases": {"kind": "Lease", "singular": "lease", "namespaced": True},
    # RBAC (sandbox/rbac.py decides SubjectAccessReviews from these).
    "rbac.authorization.k8s.io/v1/roles": {"kind": "Role", "singular": "role", "namespaced": True},
    "rbac.authorization.k8s.io/v1/rolebindings": {
        "kind": "RoleBinding",
        "singular": "rolebinding",
        "namespaced": True,
    },
    "rbac.authorization.k8s.io/v1/clusterroles": {
        "kind": "ClusterRole",
        "singular": "clusterrole",
        "namespaced": False,
    },
    "rbac.authorization.k8s.io/v1/clusterrolebindings": {
        "kind": "ClusterRoleBinding",
        "singular": "clusterrolebinding",
        "namespaced": False,
    },
    "apiextensions.k8s.io/v1/customresourcedefinitions": {
        "kind": "CustomResourceDefinition",
        "singular": "customresourcedefinition",
        "namespaced": False,
        "shortnames": {"crd", "crds"},
    },
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


class IndexedObjects(dict[tuple[Any, str | None, str], Any]):
    """kmock's object store, plus an index by resource kind, kept as kmock writes.

    kmock finds objects by scanning all of them (comparing each address by parsing resource
    names); with thousands of objects and Events that scan, not the operator, was the bottleneck.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.by_kind: dict[tuple[str | None, str | None, str | None], dict[Any, None]] = {}
        for key in self:
            self._index(key)

    @staticmethod
    def kind(resource: Any) -> tuple[str | None, str | None, str | None]:
        return (resource.group, resource.version, resource.plural)

    def _index(self, key: tuple[Any, str | None, str]) -> None:
        self.by_kind.setdefault(self.kind(key[0]), {})[key] = None

    def __setitem__(self, key: tuple[Any, str | None, str], value: Any) -> None:
        super().__setitem__(key, value)
        self._index(key)

    def __delitem__(self, key: tuple[Any, str | None, str]) -> None:
        super().__delitem__(key)
        self.by_kind.get(self.kind(key[0]), {}).pop(key, None)

    def clear(self) -> None:
        super().clear()
        self.by_kind.clear()

    def of_kind(self, resource: Any) -> list[tuple[tuple[Any, str | None, str], Any]]:
        return [(key, self[key]) for key in self.by_kind.get(self.kind(resource), {})]


def selected(item: dict[str, Any], params: Any) -> bool:
    """labelSelector (k=v, k!=v, k) and fieldSelector (dotted paths, = and !=)."""
    labels = item.get("metadata", {}).get("labels") or {}
    for term in filter(None, (params.get("labelSelector") or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    for term in filter(None, (params.get("fieldSelector") or "").split(",")):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        actual: Any = item
        for part in key.strip().split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if (str(actual if actual is not None else "") == value.strip()) == negate:
            return False
    return True
