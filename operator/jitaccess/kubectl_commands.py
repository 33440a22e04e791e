"""What each `kubectl jit` command does against the Kubernetes API, as you (your kubeconfig).

The commands gather and file; they print only what is part of a conversation (what an approver
is asked to confirm, the progress of `status`). How their results are shown (tables,
`-o json|yaml|name|wide`, the `show` view) is `kubectl_output`'s, and the command line is
`kubectl_jit`'s. Nothing here can do more than kubectl could with the same kubeconfig: admission
stamps who is asking, exactly as for `kubectl apply`.
"""

from __future__ import annotations

import os
import secrets
import time
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml
from kubernetes import client, config
from kubernetes.client import ApiException
from kubernetes.config import ConfigException
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.objects import GROUP, VERSION, Grant, parse_grant
from jitaccess.api.phases import TERMINAL, Phase
from jitaccess.kubectl_output import EventLine, Shown
from jitaccess.kubectl_review import (
    DONE,
    Awaited,
    Refused,
    confirm,
    judge,
    may_approve,
    my_turn,
    refusal,
    summary,
)
from jitaccess.policy.admission import Caller, IdentitySettings, group_members, member_of
from jitaccess.policy.eligibility import is_covered

REQUESTS, APPROVALS, GRANTS = "activationrequests", "activationapprovals", "eligiblegrants"
# A generated name is a DNS-1123 label (not only a subdomain): it is then also a valid label
# value, which tools that select by name (Argo CD, kustomize, audit pipelines) need.
NAME_LIMIT = 63
# kubectl gives up connecting after 30 s; without a limit urllib3 waits as long as the OS does.
CONNECT_TIMEOUT_S = 30.0


class Failed(Exception):
    """The command could not do what was asked; the message says why (shown as `error: ...`)."""


def generated_name(*parts: str, token: str, limit: int = NAME_LIMIT) -> str:
    """`parts` joined into a Kubernetes name that ends in `token` (lowercase hex): at most
    `limit` characters of [a-z0-9-], starting and ending alphanumeric, whatever the parts
    (grant names with dots, e-mail addresses, non-ASCII letters) are."""
    words = [word for word in (_slug(part)[:limit].strip("-") for part in parts) if word]
    # The longest part gives way first, so that each keeps what tells it apart.
    while words and len("-".join([*words, token])) > limit:
        longest = max(range(len(words)), key=lambda index: len(words[index]))
        words[longest] = words[longest][:-1].rstrip("-")
        words = [word for word in words if word]
    return "-".join([*words, token]) if words else f"request-{token}"


def _slug(text: str) -> str:
    """`text` in [a-z0-9-]: letters folded to ASCII where they have a spelling there (é -> e),
    every other run of characters one hyphen."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    kept = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in folded)
    return "-".join(word for word in kept.split("-") if word)


def _token() -> str:
    return secrets.token_hex(3)


class _ApiClient(client.ApiClient):
    """An ApiClient that gives up connecting after CONNECT_TIMEOUT_S (reading has no limit:
    `status` polls, and a slow list is still an answer)."""

    def call_api(self, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return super().call_api(
            *args, _request_timeout=_request_timeout or (CONNECT_TIMEOUT_S, None), **kwargs
        )


def kubeconfig_paths(kubeconfig: str | None) -> str:
    """Where kubectl reads its configuration: --kubeconfig, else $KUBECONFIG (a list of files,
    merged), else ~/.kube/config."""
    return kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def connect(kubeconfig: str | None, context: str | None, namespace: str | None, out: TextIO) -> Cli:
    """A Cli speaking as `context` of the kubeconfig (default: its current context), in
    `namespace` (default: the context's, then "default"); Failed, worded as kubectl words it,
    when the kubeconfig or the context is not there."""
    if kubeconfig and not os.path.exists(kubeconfig):
        raise Failed(f"stat {kubeconfig}: no such file or directory")
    paths = kubeconfig_paths(kubeconfig)
    configuration = client.Configuration()
    # One attempt per call, as kubectl makes: urllib3's default three retries would make an
    # unreachable server (CONNECT_TIMEOUT_S each) keep someone waiting for two minutes.
    configuration.retries = 0
    try:
        config.load_kube_config(config_file=paths, context=context, client_configuration=configuration)
        loader = KubeConfigLoader(config_dict=KubeConfigMerger(paths).config, active_context=context)
    except ConfigException as why:
        raise Failed(_config_problem(str(why), paths, context)) from None
    except (yaml.YAMLError, OSError) as why:
        first = str(why).splitlines()[0] if str(why) else type(why).__name__
        raise Failed(f'error loading config file "{paths}": {first}') from None
    settings = loader.current_context.get("context") or {}
    namespace = namespace or settings.get("namespace") or "default"
    # The namespaces this kubeconfig works in on the same cluster: where `-A` looks when the
    # cluster will not say which namespaces there are.
    known = {
        str(entry["namespace"])
        for entry in ((c.get("context") or {}) for c in loader.list_contexts())
        if entry.get("cluster") == settings.get("cluster") and entry.get("namespace")
    }
    return Cli(_ApiClient(configuration), namespace, out, known=tuple(sorted(known | {namespace})))


def _config_problem(message: str, paths: str, context: str | None) -> str:
    """kubectl's words for what the Python client's ConfigException says."""
    if context and "Expected object with name" in message and "contexts" in message:
        return f'context "{context}" does not exist'
    if "current-context" in message:
        return f"current-context is not set in {paths}; pass --context NAME"
    if "No configuration found" in message:
        return f"no kubeconfig found at {paths}; pass --kubeconfig or set KUBECONFIG"
    return f'error loading config file "{paths}": {message}'


class Cli:
    def __init__(
        self, api: client.ApiClient, namespace: str, out: TextIO, known: tuple[str, ...] = ()
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.auth = client.AuthenticationV1Api(api)
        self.core = client.CoreV1Api(api)
        self.server = str(api.configuration.host)
        self.namespace = namespace
        self.known = known or (namespace,)
        self.out = out
        self.warnings: list[str] = []

    # -- who am I ----------------------------------------------------------------------------

    def me(self) -> tuple[str, tuple[str, ...]]:
        """My IAM member and groups, as the cluster's authentication sees me (kubectl auth whoami)."""
        review = self.auth.create_self_subject_review({"apiVersion": "authentication.k8s.io/v1"})
        info = review.status.user_info
        member, why = member_of(Caller(info.username or "", tuple(info.groups or ())), IdentitySettings())
        if member is None:
            raise Failed(str(why))
        return member, group_members(tuple(info.groups or ()))

    def _my_name(self) -> str:
        """The part of my e-mail address before @, for the names of what I file; "" when I
        have no e-mail identity (admission then says what is wrong, not the plugin)."""
        try:
            member, _ = self.me()
        except Failed:
            return ""
        return member.partition(":")[2].partition("@")[0]

    # -- filing ------------------------------------------------------------------------------

    def request(
        self,
        grant: str,
        roles: Sequence[str],
        duration: str | None,
        reason: str,
        name: str | None,
        break_glass: bool = False,
        start: str | None = None,
    ) -> Mapping[str, Any]:
        """File an ActivationRequest; the object as the API server holds it after admission."""
        spec: dict[str, Any] = {"grant": grant, "justification": reason}
        if roles:
            spec["roles"] = list(roles)
        if duration:
            spec["duration"] = duration
        if break_glass:
            spec["breakGlass"] = True
        if start:
            spec["startTime"] = start
        return self._create(name or generated_name(self._my_name(), grant, token=_token()), spec)

    def extend(self, request: str, duration: str, reason: str, name: str | None) -> Mapping[str, Any]:
        """An extension of `request`: the same grant and roles, continuing its access."""
        seen = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, request)
        spec = spec_of(seen)
        return self._create(
            name or generated_name(request, "more", token=_token()),
            {
                "grant": spec.get("grant"),
                **({"roles": spec["roles"]} if spec.get("roles") else {}),
                "duration": duration,
                "justification": reason,
                "extends": request,
            },
        )

    def _create(self, name: str, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationRequest",
            "metadata": {"name": name},
            "spec": dict(spec),
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, body)

    def decide(self, request: str, decision: str, comment: str, pin: Mapping[str, str] | None = None) -> str:
        """File `decision`, pinned by `pin` (requestUID, requestDigest) to what the decider saw;
        without one, to the object as read now."""
        name = generated_name(request, decision, token=_token(), limit=253)
        if pin is None:
            # Pinned to the object read here: if it is deleted and created again under the same name
            # before the decision lands, admission refuses the decision instead of applying it to the new one.
            seen = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, request)
            pin = {"requestUID": seen["metadata"]["uid"]}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationApproval",
            "metadata": {"name": name},
            "spec": {"request": request, "decision": decision, "comment": comment, **pin},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, APPROVALS, body)
        print(f"{DONE[decision]} {request} (activationapproval/{name})", file=self.out)
        return name

    def approve(self, request: str, decision: str, comment: str, yes: bool, stdin: TextIO) -> str:
        """Approve or Deny: show what is being decided on, ask, and file the decision pinned to
        exactly what was shown (this object, these terms under the grant as it was read)."""
        member, groups = self.me()
        seen = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, request)
        grant = self._grant(str(spec_of(seen).get("grant") or ""))
        awaited = judge(seen, grant, self._approvals(self.namespace))
        print(f"activationrequest/{request} in {self.namespace}:", file=self.out)
        lines = summary(seen, grant, awaited)
        width = max(len(label) for label, _ in lines) + 2
        for label, value in lines:
            print(f"  {(label + ':').ljust(width)}{value}", file=self.out)
        if (problem := refusal(seen, awaited, decision, member, groups)) is not None:
            raise Refused(f"{request} {problem}")
        assert awaited is not None
        confirm(decision, request, yes, stdin, self.out)
        pin = {"requestUID": str(metadata_of(seen).get("uid") or ""), "requestDigest": awaited.digest}
        return self.decide(request, decision, comment, pin)

    def revoke(self, request: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, REQUESTS, request, {"spec": {"revoke": True}}
        )
        print(f"revoking {request}; access ends as soon as the operator removes the binding", file=self.out)

    # -- reading -----------------------------------------------------------------------------

    def requests(self, all_namespaces: bool = False, mine: bool = False) -> list[Mapping[str, Any]]:
        """The requests of the namespace (or of every namespace I may read), oldest first."""
        items = self._everywhere(REQUESTS) if all_namespaces else self._listed(self.namespace, REQUESTS)
        if mine:
            member, _ = self.me()
            items = [i for i in items if spec_of(i).get("requester") == member]
        return sorted(items, key=lambda i: str(metadata_of(i).get("creationTimestamp") or ""))

    def pending(self, all_namespaces: bool = False) -> list[Awaited]:
        """The requests that wait for my approval now: at a step whose approvers include me, not
        my own, and not already approved by me (one person counts once)."""
        member, groups = self.me()
        grants = {grant.name: grant for _, grant in self._grants()}
        candidates = [i for i in self.requests(all_namespaces) if may_approve(i, grants, member, groups)]
        # Approvals are read only where something may be mine to approve: a requester who approves
        # nowhere here may not read them. With -A, a namespace whose approvals I may not read is
        # one I cannot approve in, so its requests are not mine to list.
        approvals: dict[str, list[Mapping[str, Any]] | None] = {}
        for namespace in sorted({str(metadata_of(i).get("namespace") or self.namespace) for i in candidates}):
            approvals[namespace] = self._approvals(namespace, quiet=all_namespaces)
        mine = []
        for item in candidates:
            decided = approvals.get(str(metadata_of(item).get("namespace") or self.namespace))
            if decided is None:
                continue
            awaited = judge(item, grants.get(str(spec_of(item).get("grant"))), decided)
            if awaited is not None and my_turn(awaited, member, groups):
                mine.append(awaited)
        return mine

    def eligible(self) -> list[tuple[Mapping[str, Any], Grant]]:
        """The grants I may activate (as body and as parsed)."""
        member, groups = self.me()
        return [
            (body, grant) for body, grant in self._grants() if is_covered(member, groups, grant.principals)
        ]

    def get(self, request: str) -> Mapping[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, request)

    def show(self, request: str) -> Shown:
        """Everything `kubectl jit show` tells of a request: the object, its grant as it is now,
        the decisions filed on it (None where I may not read them) and its Events."""
        body = self.get(request)
        grant = self._grant(str(spec_of(body).get("grant") or ""), quiet=True)
        approvals = self._approvals(self.namespace, quiet=True)
        mine = None if approvals is None else [a for a in approvals if spec_of(a).get("request") == request]
        awaited = judge(body, grant, mine) if mine is not None else None
        return Shown(body, grant, awaited, mine, self._events(body))

    def status(
        self, request: str, timeout_s: float, poll_s: float = 1.0, quiet: bool = False
    ) -> Mapping[str, Any]:
        """Wait until `request` is Active or has ended, printing each new phase unless `quiet`."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            body = self.get(request)
            status = status_of(body)
            phase = status.get("phase", "Pending")
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            line = f"{request}: {phase}" + (f" - {ready.get('message')}" if ready.get("message") else "")
            if line != last and not quiet:
                print(line, file=self.out, flush=True)
            last = line
            if phase == Phase.ACTIVE or phase in TERMINAL:
                return body
            if time.monotonic() > deadline:
                raise Failed(f"{request} is still {phase} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    # -- the API, carefully ------------------------------------------------------------------

    def _listed(self, namespace: str, plural: str) -> list[Mapping[str, Any]]:
        return list(self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"])

    def _everywhere(self, plural: str) -> list[Mapping[str, Any]]:
        """`plural` in every namespace I may list it in: cluster-wide where RBAC allows that,
        else namespace by namespace (a namespace I may not read is skipped, as it is not mine)."""
        try:
            return list(self.custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"])
        except ApiException as error:
            if error.status != 403:
                raise
        found: list[Mapping[str, Any]] = []
        for namespace in self._namespaces():
            try:
                found += self._listed(namespace, plural)
            except ApiException as error:
                if error.status not in (403, 404):
                    raise
        return found

    def _namespaces(self) -> list[str]:
        try:
            return [str(ns.metadata.name) for ns in self.core.list_namespace().items]
        except ApiException as error:
            if error.status != 403:
                raise
        self.warnings.append(
            "you may list neither across all namespaces nor the namespaces themselves; "
            f"looked in the namespaces of your kubeconfig: {', '.join(self.known)}"
        )
        return list(self.known)

    def _grants(self) -> list[tuple[Mapping[str, Any], Grant]]:
        found = []
        for body in self.custom.list_cluster_custom_object(GROUP, VERSION, GRANTS)["items"]:
            grant, _ = parse_grant(body)
            if grant is not None:
                found.append((body, grant))
        return found

    def _grant(self, name: str, quiet: bool = False) -> Grant | None:
        try:
            body = self.custom.get_cluster_custom_object(GROUP, VERSION, GRANTS, name)
        except ApiException as error:
            if error.status == 404 or (quiet and error.status == 403):
                return None
            raise
        return parse_grant(body)[0]

    def _approvals(self, namespace: str, quiet: bool = False) -> list[Mapping[str, Any]] | None:
        """The decisions filed in `namespace`; when I may not read them, None if `quiet`, else
        Refused (someone who cannot read them cannot approve there)."""
        try:
            return self._listed(namespace, APPROVALS)
        except ApiException as error:
            if error.status != 403:
                raise
            if quiet:
                return None
            raise Refused(
                f"you may not read activationapprovals in {namespace}, so you cannot approve there "
                "(a cluster admin binds the jitaccess-approver role to approvers)"
            ) from None

    def _events(self, body: Mapping[str, Any]) -> list[EventLine] | None:
        """The Events of this very object (its uid: not of an earlier one of the same name),
        oldest first; None when I may not read Events here."""
        metadata = metadata_of(body)
        try:
            listed = self.core.list_namespaced_event(
                str(metadata.get("namespace") or self.namespace),
                field_selector=f"involvedObject.name={metadata.get('name')}",
            )
        except ApiException as error:
            if error.status != 403:
                raise
            return None
        lines = [
            EventLine(
                type=str(event.type or ""),
                reason=str(event.reason or ""),
                when=event.last_timestamp or event.event_time or event.metadata.creation_timestamp,
                source=str((event.source and event.source.component) or event.reporting_component or ""),
                message=str(event.message or ""),
                count=int(event.count or 1),
            )
            for event in listed.items
            if (event.involved_object.kind in (None, "ActivationRequest"))
            and (not event.involved_object.uid or event.involved_object.uid == metadata.get("uid"))
        ]
        return sorted(lines, key=lambda line: line.when or datetime.min.replace(tzinfo=UTC))
