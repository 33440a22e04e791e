"""The periodic sweep: remove our leftover bindings from IAM, report the ones someone removed.

Every `--sweep-interval` the sweeper lists the ActivationRequests from the API (not the watch
cache: a request must be known before its bindings are judged), reads the policy of every
resource a grant or a request points at, and audits it (policy.drift). Each finding is checked
again under the request's reconcile lock, against a fresh read of the request, before anything
is done, so the sweeper can never remove a binding the reconciler is writing at that moment.
Bindings that are not ours (no jitaccess reference) are never touched; with `--namespace`, only
references to served namespaces are judged (another installation may serve the others).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jitaccess.api.times import format_time
from jitaccess.iam.bindings import Binding
from jitaccess.iam.store import PolicyStore
from jitaccess.policy.drift import KnownRequest, Leftover, audit, known_request, leftover_reason
from jitaccess.policy.lifecycle import Event, Phase

log = logging.getLogger(__name__)
REMOVED_EXTERNALLY = "BindingRemovedExternally"
CONDITION = "BindingsPresent"


@dataclass
class SweepReport:
    resources: int = 0
    removed: list[Leftover] = field(default_factory=list)
    reported: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Sweeper:
    def __init__(self, reconciler: Any, store: PolicyStore, interval: timedelta) -> None:
        self.reconciler = reconciler
        self.store = store
        self.interval = interval
        self.sweeps = 0
        self.removed = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval.total_seconds())
            try:
                report = await self.sweep()
            except Exception as error:  # a failed sweep is retried at the next interval
                log.warning("IAM sweep failed: %s", error)
                continue
            if report.removed or report.reported or report.errors:
                log.info(
                    "IAM sweep of %d resource(s): %d leftover binding(s) removed, %d removal(s) by others "
                    "reported, %d error(s)",
                    report.resources,
                    len(report.removed),
                    len(report.reported),
                    len(report.errors),
                )

    async def sweep(self) -> SweepReport:
        reconciler = self.reconciler
        report = SweepReport()
        bodies = await reconciler.kube.list_requests()
        requests = {(r.namespace, r.name): r for r in map(known_request, bodies)}
        resources = {grant.resource for grant in reconciler.grants.values() if grant is not None}
        resources |= {binding.resource for request in requests.values() for binding in request.bindings}
        for resource in sorted(resources):
            try:
                policy = await asyncio.to_thread(self.store.get, resource)
            except Exception as error:  # one unreadable resource does not stop the sweep
                report.errors.append(f"{resource}: {error}")
                continue
            report.resources += 1
            found = audit(resource, _as_dicts(policy), requests, reconciler.clock.now())
            for leftover in found.leftovers:
                if self._serves(leftover.key[0]) and await self._remove(leftover):
                    report.removed.append(leftover)
            for key, gone in found.missing.items():
                if await self._report_missing(key, gone):
                    report.reported.append(key)
        self.sweeps += 1
        self.removed += len(report.removed)
        return report

    def _serves(self, namespace: str) -> bool:
        config = self.reconciler.config
        return bool(config.all_namespaces or not config.namespaces or namespace in config.namespaces)

    async def _remove(self, leftover: Leftover) -> bool:
        reconciler = self.reconciler
        namespace, name = leftover.key
        async with reconciler.lock_for(("request", leftover.key)):
            body = await reconciler.kube.get_request(namespace, name)
            fresh: KnownRequest | None = known_request(body) if body is not None else None
            why = leftover_reason(fresh, leftover.uid)
            if why is None:
                return False  # activated meanwhile: it is the reconciler's again
            outcome = await reconciler.writer.apply(leftover.binding.resource, remove=[leftover.binding])
            if not outcome.ok:
                log.warning(
                    "could not remove leftover binding %s: %s", _show(leftover.binding), outcome.message
                )
                return False
            log.info("removed leftover binding %s: %s", _show(leftover.binding), why)
            if body is not None and fresh is not None and fresh.uid == leftover.uid:
                reconciler.post_event_now(
                    body,
                    Event(
                        "Warning",
                        "LeftoverBindingRemoved",
                        f"removed {leftover.binding.role} for {leftover.binding.member} on "
                        f"{leftover.binding.resource} from IAM: {why}",
                    ),
                )
            return True

    async def _report_missing(self, key: tuple[str, str], gone: list[Binding]) -> bool:
        reconciler = self.reconciler
        namespace, name = key
        async with reconciler.lock_for(("request", key)):
            body = await reconciler.kube.get_request(namespace, name)
            if body is None:
                return False
            fresh = known_request(body)
            status = dict(body.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
            if fresh.phase is not Phase.ACTIVE or any(
                c.get("type") == CONDITION and c.get("reason") == REMOVED_EXTERNALLY for c in conditions
            ):
                return False  # ended meanwhile, or already reported
            what = ", ".join(f"{b.role} on {b.resource}" for b in gone)
            message = (
                f"{what} was removed from IAM by someone else; jitaccess does not grant it again "
                "(whoever removed it may have meant to). File a new request if access is still needed."
            )
            condition = {
                "type": CONDITION,
                "status": "False",
                "reason": REMOVED_EXTERNALLY,
                "message": message,
                "lastTransitionTime": format_time(reconciler.clock.now()),
                "observedGeneration": int((body.get("metadata") or {}).get("generation") or 1),
            }
            kept = [dict(c) for c in conditions if c.get("type") != CONDITION]
            updated = await reconciler.kube.patch_request_status(
                namespace, name, {"conditions": [*kept, condition]}
            )
            if updated is None:
                return False
            reconciler.remember(key, updated)
            reconciler.post_event_now(updated, Event("Warning", REMOVED_EXTERNALLY, message))
            log.warning("%s/%s: %s", namespace, name, message)
            return True


def _as_dicts(policy: Any) -> list[dict[str, Any]]:
    return [
        {
            "role": binding.role,
            "members": list(binding.members),
            "condition": {
                "title": binding.condition.title,
                "description": binding.condition.description,
                "expression": binding.condition.expression,
            }
            if binding.HasField("condition")
            else None,
        }
        for binding in policy.bindings
    ]


def _show(binding: Binding) -> str:
    return f"{binding.role} {binding.member} on {binding.resource}"
