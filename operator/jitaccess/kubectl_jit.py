"""`kubectl jit`: the kubectl plugin for people who ask for, approve and revoke access.

    kubectl jit request GRANT --role R --for 30m --reason "INC-1: ..."   (prints the request name)
    kubectl jit request GRANT --break-glass --reason "..."   (at once, no approval; reviewed afterwards)
    kubectl jit extend NAME --for 30m --reason "..."   (more time for Active access, without a gap)
    kubectl jit approve|deny NAME [--comment TEXT] [--yes]   (shows what you decide on, then asks)
    kubectl jit review NAME [--revoke] --comment TEXT   (a break-glass request, as one of its reviewers)
    kubectl jit revoke NAME
    kubectl jit list [--mine | --pending-my-approval]
    kubectl jit pending                      what awaits my approval, at which step (= list --pending-my-approval)
    kubectl jit grants                       what I may activate
    kubectl jit status NAME                  waits, with a progress line, until Active or ended

Installed as the console script `kubectl-jit`, so kubectl finds it on PATH. It speaks to the
cluster as you (your kubeconfig): the admission webhooks stamp who you are, exactly as for
`kubectl apply`, so the plugin cannot do anything you could not do with kubectl itself.

Whatever a request says is someone else's input: it is printed inert (control characters and
terminal escapes shown escaped), and an approval is pinned to the object and the terms shown.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from kubernetes import client, config
from kubernetes.client import ApiException

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.durations import format_duration
from jitaccess.api.objects import (
    GROUP,
    VERSION,
    Grant,
    parse_grant,
)
from jitaccess.api.phases import TERMINAL, Phase
from jitaccess.kubectl_review import (
    DONE,
    Awaited,
    Refused,
    age,
    confirm,
    inert,
    judge,
    may_approve,
    my_turn,
    refusal,
    summary,
)
from jitaccess.policy.admission import Caller, IdentitySettings, group_members, member_of
from jitaccess.policy.eligibility import is_covered

REQUESTS, APPROVALS, GRANTS = "activationrequests", "activationapprovals", "eligiblegrants"


class Cli:
    def __init__(self, api: client.ApiClient, namespace: str, out: TextIO) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.auth = client.AuthenticationV1Api(api)
        self.namespace = namespace
        self.out = out

    # -- who am I ----------------------------------------------------------------------------

    def me(self) -> tuple[str, tuple[str, ...]]:
        """My IAM member and groups, as the cluster's authentication sees me (kubectl auth whoami)."""
        review = self.auth.create_self_subject_review({"apiVersion": "authentication.k8s.io/v1"})
        info = review.status.user_info
        member, why = member_of(Caller(info.username or "", tuple(info.groups or ())), IdentitySettings())
        if member is None:
            raise SystemExit(f"kubectl jit: {why}")
        return member, group_members(tuple(info.groups or ()))

    # -- commands ----------------------------------------------------------------------------

    def request(
        self,
        grant: str,
        roles: Sequence[str],
        duration: str | None,
        reason: str,
        name: str | None,
        break_glass: bool = False,
    ) -> str:
        spec: dict[str, Any] = {"grant": grant, "justification": reason}
        if roles:
            spec["roles"] = list(roles)
        if duration:
            spec["duration"] = duration
        if break_glass:
            spec["breakGlass"] = True
        name = name or f"{grant[:40]}-{secrets.token_hex(3)}"
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            REQUESTS,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ActivationRequest",
                "metadata": {"name": name},
                "spec": spec,
            },
        )
        print(
            f"activationrequest/{name} created in {self.namespace}; follow it with: kubectl jit status {name}",
            file=self.out,
        )
        return name

    def extend(self, request: str, duration: str, reason: str, name: str | None) -> str:
        """An extension of `request`: the same grant and roles, continuing its access."""
        seen = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, request)
        spec = seen.get("spec") or {}
        name = name or f"{request[:40]}-more-{secrets.token_hex(3)}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationRequest",
            "metadata": {"name": name},
            "spec": {
                "grant": spec.get("grant"),
                **({"roles": spec["roles"]} if spec.get("roles") else {}),
                "duration": duration,
                "justification": reason,
                "extends": request,
            },
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, body)
        print(
            f"activationrequest/{name} extends {request}; follow it with: kubectl jit status {name}",
            file=self.out,
        )
        return name

    def decide(self, request: str, decision: str, comment: str, pin: Mapping[str, str] | None = None) -> str:
        """File `decision`, pinned by `pin` (requestUID, requestDigest) to what the decider saw;
        without one, to the object as read now."""
        name = f"{request[:200]}-{decision.lower()}-{secrets.token_hex(3)}"
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
        awaited = judge(seen, grant, self._approvals())
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

    def list(self, mine: bool, pending_my_approval: bool) -> list[Mapping[str, Any]]:
        if pending_my_approval:
            return [awaited.body for awaited in self.pending()]
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS)["items"]
        if mine:
            member, _ = self.me()
            items = [i for i in items if spec_of(i).get("requester") == member]
        rows = [
            [
                i["metadata"]["name"],
                str(spec_of(i).get("requester", "")),
                str(spec_of(i).get("grant", "")),
                ",".join(spec_of(i).get("roles") or ["(all)"]),
                str(status_of(i).get("phase", "Pending")),
                str(status_of(i).get("expiresAt") or ""),
            ]
            for i in sorted(items, key=lambda i: i["metadata"].get("creationTimestamp") or "")
        ]
        _table(self.out, ["NAME", "REQUESTER", "GRANT", "ROLES", "PHASE", "EXPIRES"], rows)
        return items

    def pending(self) -> list[Awaited]:
        """The requests that wait for my approval now: at a step whose approvers include me, not
        my own, and not already approved by me (one person counts once)."""
        member, groups = self.me()
        grants: dict[str, Grant] = {}
        for body in self.custom.list_cluster_custom_object(GROUP, VERSION, GRANTS)["items"]:
            grant, _ = parse_grant(body)
            if grant is not None:
                grants[grant.name] = grant
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS)["items"]
        # Approvals are read only when something may be mine to approve: a requester who approves
        # nowhere here may not read them.
        candidates = [i for i in items if may_approve(i, grants, member, groups)]
        approvals = self._approvals() if candidates else []
        mine = [
            awaited
            for item in candidates
            if (awaited := judge(item, grants.get(str(spec_of(item).get("grant"))), approvals)) is not None
            and my_turn(awaited, member, groups)
        ]
        mine.sort(key=lambda a: str(metadata_of(a.body).get("creationTimestamp") or ""))
        now = datetime.now(UTC)
        rows = [
            [
                awaited.name,
                str(awaited.spec.requester or ""),
                awaited.grant.name,
                ",".join(awaited.terms.roles),
                awaited.step,
                age(metadata_of(awaited.body).get("creationTimestamp"), now),
            ]
            for awaited in mine
        ]
        _table(self.out, ["NAME", "REQUESTER", "GRANT", "ROLES", "STEP", "AGE"], rows)
        return mine

    def _grant(self, name: str) -> Grant | None:
        try:
            body = self.custom.get_cluster_custom_object(GROUP, VERSION, GRANTS, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return parse_grant(body)[0]

    def _approvals(self) -> list[Mapping[str, Any]]:
        try:
            listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, APPROVALS)
        except ApiException as error:
            if error.status != 403:
                raise
            raise Refused(
                f"you may not read activationapprovals in {self.namespace}, so you cannot approve there "
                "(a cluster admin binds the jitaccess-approver role to approvers)"
            ) from None
        return list(listed["items"])

    def grants(self) -> list[str]:
        member, groups = self.me()
        rows, names = [], []
        for body in self.custom.list_cluster_custom_object(GROUP, VERSION, GRANTS)["items"]:
            grant, _ = parse_grant(body)
            if grant is None or not is_covered(member, groups, grant.principals):
                continue
            names.append(grant.name)
            approval = grant.approval.describe() if grant.approval else "self"
            rows.append(
                [
                    grant.name,
                    grant.resource,
                    ",".join(grant.roles),
                    approval,
                    format_duration(grant.max_duration),
                ]
            )
        _table(self.out, ["GRANT", "RESOURCE", "ROLES", "APPROVAL", "MAX"], rows)
        return names

    def status(self, request: str, timeout_s: float, poll_s: float = 1.0) -> str:
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            body = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, REQUESTS, request)
            status = status_of(body)
            phase = status.get("phase", "Pending")
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            line = f"{request}: {phase}" + (f" - {ready.get('message')}" if ready.get("message") else "")
            if line != last:
                print(line, file=self.out, flush=True)
                last = line
            if phase == Phase.ACTIVE or phase in TERMINAL:
                return phase
            if time.monotonic() > deadline:
                raise SystemExit(f"kubectl jit: {request} is still {phase} after {timeout_s:.0f}s")
            time.sleep(poll_s)


def _table(out: TextIO, header: list[str], rows: list[list[str]]) -> None:
    rows = [[inert(cell) for cell in row] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print(
            "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip(),
            file=out,
        )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubectl jit", description="Just-In-Time access to Google Cloud")
    top.add_argument("--kubeconfig", default=None)
    top.add_argument("--context", default=None)
    top.add_argument("-n", "--namespace", default=None, help="default: the context's namespace")
    commands = top.add_subparsers(dest="command", required=True)
    request = commands.add_parser("request", help="ask to activate roles of a grant")
    request.add_argument("grant")
    request.add_argument(
        "--role", action="append", default=[], help="repeatable; default: all the grant's roles"
    )
    request.add_argument(
        "--for", dest="duration", default=None, help="how long, e.g. 30m (default: the grant's)"
    )
    request.add_argument(
        "--reason", required=True, help="the justification, e.g. a ticket and what you will do"
    )
    request.add_argument("--name", default=None)
    request.add_argument(
        "--break-glass",
        action="store_true",
        help="activate at once without approval, where the grant allows it; every reviewer is alerted",
    )
    extend = commands.add_parser("extend", help="more time for Active access, without a gap")
    extend.add_argument("request")
    extend.add_argument("--for", dest="duration", required=True, help="how much longer, e.g. 30m")
    extend.add_argument("--reason", required=True, help="why more time is needed")
    extend.add_argument("--name", default=None)
    review = commands.add_parser("review", help="review a break-glass activation after the fact")
    review.add_argument("request")
    review.add_argument("--revoke", action="store_true", help="end its access now (recorded as your review)")
    review.add_argument("--comment", required=True, help="what you found")
    for verb in ("approve", "deny"):
        decide = commands.add_parser(
            verb, help=f"{verb} a request that awaits approval (shows it first, then asks)"
        )
        decide.add_argument("request")
        decide.add_argument("--comment", default="")
        decide.add_argument(
            "-y",
            "--yes",
            action="store_true",
            help="do not ask; needed when stdin is not a terminal",
        )
    revoke = commands.add_parser("revoke", help="end access early")
    revoke.add_argument("request")
    listing = commands.add_parser("list", help="requests in the namespace")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--mine", action="store_true")
    which.add_argument("--pending-my-approval", action="store_true")
    commands.add_parser("pending", help="requests awaiting my approval (list --pending-my-approval)")
    commands.add_parser("grants", help="what I may activate")
    status = commands.add_parser("status", help="wait until a request is Active or has ended")
    status.add_argument("request")
    status.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    return top


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, stdin: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=args.kubeconfig, context=args.context, client_configuration=configuration
    )
    namespace = args.namespace
    if namespace is None:
        _, active = config.list_kube_config_contexts(config_file=args.kubeconfig)
        if args.context:
            contexts, _ = config.list_kube_config_contexts(config_file=args.kubeconfig)
            active = next(c for c in contexts if c["name"] == args.context)
        namespace = (active.get("context") or {}).get("namespace") or "default"
    cli = Cli(client.ApiClient(configuration), namespace, out)
    try:
        return _run(cli, args, stdin or sys.stdin)
    except Refused as why:
        print(f"kubectl jit: {why}", file=sys.stderr)
        return 1
    except ApiException as error:
        try:
            message = json.loads(error.body or "{}").get("message") or error.reason
        except ValueError:
            message = error.reason
        print(f"kubectl jit: {inert(message)}", file=sys.stderr)
        return 1


def _run(cli: Cli, args: argparse.Namespace, stdin: TextIO) -> int:
    if args.command == "request":
        cli.request(args.grant, args.role, args.duration, args.reason, args.name, args.break_glass)
    elif args.command == "extend":
        cli.extend(args.request, args.duration, args.reason, args.name)
    elif args.command == "review":
        cli.decide(args.request, "Revoke" if args.revoke else "Review", args.comment)
    elif args.command in ("approve", "deny"):
        decision = "Approve" if args.command == "approve" else "Deny"
        cli.approve(args.request, decision, args.comment, args.yes, stdin)
    elif args.command == "revoke":
        cli.revoke(args.request)
    elif args.command == "list":
        cli.list(args.mine, args.pending_my_approval)
    elif args.command == "pending":
        cli.pending()
    elif args.command == "grants":
        cli.grants()
    elif args.command == "status":
        phase = cli.status(args.request, args.timeout, args.interval)
        return 0 if phase == "Active" else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
