"""Role-based access control for the sandbox API, evaluated as kube-apiserver's RBAC authorizer does.

Why it exists: jitaccess hands out access by RBAC as much as by IAM. Who may file a request, who
may approve, who may revoke (a custom verb) is decided by ClusterRoles and bindings like those in
manifests/, and the operator may ask the API server about it with a SubjectAccessReview. A test
against the sandbox must get the answer a real cluster would give for the same objects, so this
module reproduces the authorizer (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac and
pkg/apis/rbac/v1/evaluation_helpers.go) rather than approximating it:

- the privileged group `system:masters` is allowed everything, before RBAC is consulted (as
  kube-apiserver's privileged-group authorizer; its reason is empty);
- every ClusterRoleBinding whose subjects include the user grants its role's rules everywhere;
  then every RoleBinding of the request's namespace grants its Role (of that namespace) or
  ClusterRole there; the first rule that allows decides, and the reason names that binding;
- subjects: User and Group by name; ServiceAccount by namespace (a RoleBinding's own when the
  subject has none) and name, as the username `system:serviceaccount:NS:NAME`;
- rules: verbs, apiGroups and resources with `*`; `*/sub` for any resource's subresource `sub`
  (there is no `res/*`: kube-apiserver reads it as the literal subresource "*"); resourceNames
  restrict only when non-empty, and so never match a request without a name (create, list);
  nonResourceURLs (`/healthz`, `/api/*`) for requests that are not about resources;
- ClusterRole aggregation: a ClusterRole with an `aggregationRule` has the rules of every other
  ClusterRole its selectors match (the aggregation controller writes them there in a cluster;
  here they are gathered when asked, so a newly labelled role counts at once);
- denial has no reason unless a binding names a role that does not exist (then kube says so).

Authorisation is not enforced on ordinary requests yet; the sandbox answers SubjectAccessReviews
from it. Enforcing it is `SandboxApi.authorize(request)` in `_handle`, then `forbidden_message`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GROUP = "rbac.authorization.k8s.io"
ROLES = f"{GROUP}/v1/roles"
CLUSTER_ROLES = f"{GROUP}/v1/clusterroles"
ROLE_BINDINGS = f"{GROUP}/v1/rolebindings"
CLUSTER_ROLE_BINDINGS = f"{GROUP}/v1/clusterrolebindings"
# kind -> (resource key, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Role": (ROLES, True),
    "ClusterRole": (CLUSTER_ROLES, False),
    "RoleBinding": (ROLE_BINDINGS, True),
    "ClusterRoleBinding": (CLUSTER_ROLE_BINDINGS, False),
}
PRIVILEGED_GROUP = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

Body = Mapping[str, Any]
Stored = Callable[[str], Sequence[Body]]


@dataclass(frozen=True)
class Attributes:
    """What a request asks, in authorisation's terms (k8s.io/apiserver authorizer.Attributes)."""

    user: str
    groups: tuple[str, ...] = ()
    verb: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    api_version: str = ""
    # Requests that are not about resources (/version, /healthz) are matched by path alone.
    resource_request: bool = True
    path: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


class RbacAuthorizer:
    """Decides requests from the Roles, ClusterRoles and bindings that `stored(key)` lists live."""

    def __init__(self, stored: Stored, privileged_groups: Iterable[str] = (PRIVILEGED_GROUP,)) -> None:
        self._stored = stored
        self._privileged = frozenset(privileged_groups)

    def authorize(self, attributes: Attributes) -> Decision:
        if self._privileged.intersection(attributes.groups):
            return Decision(True, "")
        errors: list[str] = []
        for source, rules in self._grants(attributes, errors):
            if any(rule_allows(attributes, rule) for rule in rules):
                return Decision(True, f"RBAC: allowed by {source}")
        unique = list(dict.fromkeys(errors))
        if not unique:
            return Decision(False, "")
        return Decision(False, "RBAC: " + (unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"))

    def rules_for(self, user: str, groups: tuple[str, ...], namespace: str) -> tuple[list[Body], list[str]]:
        """Every rule that applies to the user in `namespace` (and cluster-wide), and the errors met
        (bindings to missing roles): what a SelfSubjectRulesReview lists (`kubectl auth can-i --list`)."""
        errors: list[str] = []
        rules = [
            rule
            for _, granted in self._grants(Attributes(user, groups, namespace=namespace), errors)
            for rule in granted
        ]
        return rules, list(dict.fromkeys(errors))

    def _grants(self, attributes: Attributes, errors: list[str]) -> Iterable[tuple[str, list[Body]]]:
        """(who granted it, the rules) for each binding that names the user, in the authorizer's order:
        ClusterRoleBindings, then the RoleBindings of the request's namespace."""
        for binding in _by_name(self._stored(CLUSTER_ROLE_BINDINGS)):
            subject = _applies_to(attributes, binding, "")
            if subject is None:
                continue
            rules = self._role_rules(binding.get("roleRef") or {}, "", errors)
            if rules is not None:
                yield _describe("ClusterRoleBinding", binding, subject, ""), rules
        namespace = attributes.namespace
        if not namespace:
            return
        for binding in _by_name(self._stored(ROLE_BINDINGS)):
            if _namespace(binding) != namespace:
                continue
            subject = _applies_to(attributes, binding, namespace)
            if subject is None:
                continue
            rules = self._role_rules(binding.get("roleRef") or {}, namespace, errors)
            if rules is not None:
                yield _describe("RoleBinding", binding, subject, namespace), rules

    def _role_rules(self, ref: Body, namespace: str, errors: list[str]) -> list[Body] | None:
        kind, name = ref.get("kind"), ref.get("name")
        if kind == "Role":
            for role in self._stored(ROLES):
                if _namespace(role) == namespace and _name(role) == name:
                    return list(role.get("rules") or [])
            errors.append(f'role.{GROUP} "{name}" not found')
            return None
        if kind == "ClusterRole":
            roles = {_name(role): role for role in self._stored(CLUSTER_ROLES)}
            if name not in roles:
                errors.append(f'clusterrole.{GROUP} "{name}" not found')
                return None
            return _cluster_role_rules(roles, str(name), frozenset())
        errors.append(f'unsupported role reference kind: "{kind}"')
        return None

    def cluster_role_rules(self, name: str) -> list[Body]:
        """A ClusterRole's rules as the authorizer sees them (aggregation included)."""
        roles = {_name(role): role for role in self._stored(CLUSTER_ROLES)}
        return _cluster_role_rules(roles, name, frozenset()) if name in roles else []


def _cluster_role_rules(roles: Mapping[str, Body], name: str, seen: frozenset[str]) -> list[Body]:
    """The role's rules; for an aggregated role, the union of the rules of the roles it selects.

    The aggregation controller overwrites an aggregated role's own rules with that union, and a
    selected role that aggregates in turn contributes its own union (cycles contribute nothing)."""
    role = roles[name]
    aggregation = role.get("aggregationRule")
    if aggregation is None:
        return list(role.get("rules") or [])
    selectors = aggregation.get("clusterRoleSelectors") or []
    union: list[Body] = []
    for other in sorted(roles):
        if other == name or other in seen:
            continue
        labels = (roles[other].get("metadata") or {}).get("labels") or {}
        if not any(selector_matches(selector, labels) for selector in selectors):
            continue
        for rule in _cluster_role_rules(roles, other, seen | {name}):
            if rule not in union:
                union.append(rule)
    return union


def selector_matches(selector: Body | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist).
    An empty selector matches everything, a missing one nothing, a malformed one nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In":
            if not values or key not in labels or labels[key] not in values:
                return False
        elif operator == "NotIn":
            if not values or (key in labels and labels[key] in values):
                return False
        elif operator == "Exists":
            if values or key not in labels:
                return False
        elif operator == "DoesNotExist":
            if values or key in labels:
                return False
        else:
            return False
    return True


def rule_allows(attributes: Attributes, rule: Body) -> bool:
    """rbac.RuleAllows: one PolicyRule against one request."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attributes.verb not in verbs:
        return False
    if not attributes.resource_request:
        return any(_url_matches(pattern, attributes.path) for pattern in rule.get("nonResourceURLs") or [])
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attributes.api_group not in groups:
        return False
    combined = attributes.resource
    if attributes.subresource:
        combined = f"{attributes.resource}/{attributes.subresource}"
    if not any(
        resource in ("*", combined) or (attributes.subresource and resource == f"*/{attributes.subresource}")
        for resource in rule.get("resources") or []
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attributes.name in names


def _url_matches(pattern: str, path: str) -> bool:
    if pattern in ("*", path):
        return True
    return pattern.endswith("*") and path.startswith(pattern[:-1])


def _applies_to(attributes: Attributes, binding: Body, namespace: str) -> Body | None:
    """The first of the binding's subjects that is the requester, if any."""
    for subject in binding.get("subjects") or []:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User" and name == attributes.user:
            return subject
        if kind == "Group" and name in attributes.groups:
            return subject
        if kind == "ServiceAccount":
            space = subject.get("namespace") or namespace
            if space and attributes.user == service_account_username(space, str(name)):
                return subject
    return None


def _describe(kind: str, binding: Body, subject: Body, namespace: str) -> str:
    """As kube's clusterRoleBindingDescriber and roleBindingDescriber print themselves."""
    ref = binding.get("roleRef") or {}
    name = _name(binding) if kind == "ClusterRoleBinding" else f"{_name(binding)}/{_namespace(binding)}"
    who = str(subject.get("name"))
    if subject.get("kind") == "ServiceAccount":
        who = f"{who}/{subject.get('namespace') or namespace}"
    return f'{kind} "{name}" of {ref.get("kind")} "{ref.get("name")}" to {subject.get("kind")} "{who}"'


def forbidden_message(attributes: Attributes, reason: str = "") -> str:
    """The message of kube-apiserver's 403 for a request the authorizer did not allow."""
    if not attributes.resource_request:
        message = f'User "{attributes.user}" cannot {attributes.verb} path "{attributes.path}"'
    else:
        resource = attributes.resource
        if attributes.subresource:
            resource = f"{resource}/{attributes.subresource}"
        scope = (
            f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
        )
        message = (
            f'User "{attributes.user}" cannot {attributes.verb} resource "{resource}" '
            f'in API group "{attributes.api_group}" {scope}'
        )
    if reason:
        message = f"{message}: {reason}"
    qualified = (
        f"{attributes.resource}.{attributes.api_group}" if attributes.api_group else attributes.resource
    )
    if not attributes.resource_request or not qualified:
        return f"forbidden: {message}"
    if attributes.name:
        return f'{qualified} "{attributes.name}" is forbidden: {message}'
    return f"{qualified} is forbidden: {message}"


def rbac_documents(documents: Iterable[Any], default_namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """(resource key, body) of the RBAC objects among manifest documents; other kinds are skipped,
    and namespaced ones without a namespace go to `default_namespace` (as `kubectl apply -n`)."""
    found = []
    for document in documents:
        if not isinstance(document, dict) or not str(document.get("apiVersion", "")).startswith(f"{GROUP}/"):
            continue
        if document.get("kind") not in KINDS:
            continue
        key, namespaced = KINDS[document["kind"]]
        body = {**document, "metadata": dict(document.get("metadata") or {})}
        if namespaced:
            body["metadata"].setdefault("namespace", default_namespace)
        else:
            body["metadata"].pop("namespace", None)
        found.append((key, body))
    return found


def bootstrap_policy() -> list[tuple[str, dict[str, Any]]]:
    """The part of kube-apiserver's bootstrap policy that matters here: cluster-admin for
    system:masters, the aggregated admin/edit/view roles (manifests/ label jitaccess-view into
    them), and system:basic-user, which lets everyone ask what they may do (`kubectl auth can-i`)."""

    def role(
        name: str, rules: list[dict[str, Any]], aggregate: str | None = None, into: str | None = None
    ) -> dict[str, Any]:
        labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
        if into:  # view is part of edit, edit of admin
            labels[f"{GROUP}/aggregate-to-{into}"] = "true"
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
            },
            "rules": rules,
        }
        if aggregate:
            body["aggregationRule"] = {
                "clusterRoleSelectors": [{"matchLabels": {f"{GROUP}/aggregate-to-{aggregate}": "true"}}]
            }
        return body

    def binding(name: str, group: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
            },
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": group}],
        }

    everything = [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ]
    basic = [
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            "verbs": ["create"],
        },
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
    ]
    discovery = [
        {
            "nonResourceURLs": [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/openapi",
                "/openapi/*",
                "/version",
                "/version/",
            ],
            "verbs": ["get"],
        }
    ]
    public_info = [
        {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}
    ]
    return [
        (CLUSTER_ROLES, role("cluster-admin", everything)),
        (CLUSTER_ROLE_BINDINGS, binding("cluster-admin", PRIVILEGED_GROUP)),
        (CLUSTER_ROLES, role("admin", [], aggregate="admin")),
        (CLUSTER_ROLES, role("edit", [], aggregate="edit", into="admin")),
        (CLUSTER_ROLES, role("view", [], aggregate="view", into="edit")),
        (CLUSTER_ROLES, role("system:basic-user", basic)),
        (CLUSTER_ROLE_BINDINGS, binding("system:basic-user", "system:authenticated")),
        (CLUSTER_ROLES, role("system:discovery", discovery)),
        (CLUSTER_ROLE_BINDINGS, binding("system:discovery", "system:authenticated")),
        (CLUSTER_ROLES, role("system:public-info-viewer", public_info)),
        (CLUSTER_ROLE_BINDINGS, binding("system:public-info-viewer", "system:authenticated")),
    ]


def _by_name(objects: Sequence[Body]) -> list[Body]:
    """Bindings in a stable order (kube's informer cache has none), so the reason is reproducible."""
    return sorted(objects, key=lambda body: (_namespace(body), _name(body)))


def _name(body: Body) -> str:
    return str((body.get("metadata") or {}).get("name") or "")


def _namespace(body: Body) -> str:
    return str((body.get("metadata") or {}).get("namespace") or "")
