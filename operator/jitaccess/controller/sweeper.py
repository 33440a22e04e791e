"""The periodic sweep: remove our leftover bindings from IAM, report the ones someone removed.

Every `--sweep-interval` the sweeper lists the ActivationRequests from the API (not the watch
cache: a request must be known before its bindings are judged), reads the policy of every
resource a grant or a request points at, and audits it (policy.drift). Each finding is checked
again under the request's reconcile lock, against a fresh read of the request, before anything
is done, so the sweeper can never remove a binding the reconciler is writing at that moment.
Only bindings whose reference carries a MAC made with our key are ever removed; anything else,
however much it looks like ours, is never touched. With `--namespace`, only references to
served namespaces are judged (another installation may serve the others).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from jitaccess.api.bodies import generation_of, status_of
from jitaccess.api.reasons import Reason
from jitaccess.controller.cache import Cache
from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.kube import Kube
from jitaccess.controller.recorder import Recorder
from jitaccess.iam.store import PolicyStore
from jitaccess.iam.writer import IamWriter
from jitaccess.policy.conditions import BINDINGS_PRESENT, set_condition
from jitaccess.policy.drift import Found, KnownRequest, Leftover, audit, known_request, leftover_reason
from jitaccess.policy.steps import Event

log = logging.getLogger(__name__)
REMOVED_EXTERNALLY = Reason.BINDING_REMOVED_EXTERNALLY


@dataclass
class SweepReport:
    resources: int = 0
    removed: list[Leftover] = field(default_factory=list)
    reported: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unproven: int = 0  # bindings that name a request of ours but carry no MAC made with our key


@dataclass
class Cadence:
    """Every `interval_s`, counted from the interval already begun: kept across leadership terms,
    so a replica that loses and retakes the lease within an interval does not start the wait
    afresh (under load a flapping leader would never sweep)."""

    interval_s: float
    started: float | None = None  # time.monotonic() when the current interval began

    def wait_s(self, now: float) -> float:
        if self.started is None:
            self.started = now
        return max(0.0, self.started + self.interval_s - now)

    def begin(self, now: float) -> None:
        self.started = now


class Sweeper:
    """Given what it uses: the policies (store), the requests (kube, cache), the writer that owns
    IAM writes, the recorder, the configuration, and the per-request locks the reconciler holds."""

    def __init__(
        self,
        store: PolicyStore,
        kube: Kube,
        writer: IamWriter,
        cache: Cache,
        recorder: Recorder,
        config: OperatorConfig,
        lock_for: Callable[[Hashable], asyncio.Lock],
        interval: timedelta,
    ) -> None:
        self.store, self.kube, self.writer, self.cache = store, kube, writer, cache
        self.recorder, self.config, self.lock_for = recorder, config, lock_for
        self.interval = interval
        self.cadence = Cadence(interval.total_seconds())
        self.sweeps = 0
        self.removed = 0
        self.unproven = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.cadence.wait_s(time.monotonic()))
            self.cadence.begin(time.monotonic())
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
        report = SweepReport()
        key = self.config.attestation_key
        bodies = await self.kube.list_requests()
        requests = {(r.namespace, r.name): r for r in (known_request(body, key) for body in bodies)}
        resources = {grant.resource for grant in self.cache.grants.values() if grant is not None}
        resources |= {resource for request in requests.values() for resource, _ in request.holds}
        for resource in sorted(resources):
            try:
                bindings = await asyncio.to_thread(self.store.bindings, resource)
            except Exception as error:  # one unreadable resource does not stop the sweep
                report.errors.append(f"{resource}: {error}")
                continue
            report.resources += 1
            found = audit(resource, bindings, requests, self.config.clock.now(), key)
            report.unproven += len(found.unproven)
            for leftover in found.leftovers:
                if self._serves(leftover.key[0]) and await self._remove(leftover):
                    report.removed.append(leftover)
            for key, gone in found.missing.items():
                if await self._report_missing(key, gone):
                    report.reported.append(key)
        self.sweeps += 1
        self.removed += len(report.removed)
        self.unproven = report.unproven
        if report.unproven:
            log.info(
                "IAM sweep: %d binding(s) name a jitaccess request without a MAC made with this key "
                "(written by jitaccess 0.1, or imitations); left alone, they expire by their condition",
                report.unproven,
            )
        return report

    def _serves(self, namespace: str) -> bool:
        config = self.config
        return bool(config.all_namespaces or not config.namespaces or namespace in config.namespaces)

    async def _remove(self, leftover: Leftover) -> bool:
        namespace, name = leftover.key
        found = leftover.found
        async with self.lock_for(("request", leftover.key)):
            body = await self.kube.get_request(namespace, name)
            key = self.config.attestation_key
            fresh: KnownRequest | None = known_request(body, key) if body is not None else None
            why = leftover_reason(fresh, found.reference.uid)
            if why is None:
                return False  # activated meanwhile: it is the reconciler's again
            outcome = await self.writer.apply(found.resource, owners=(found.reference,))
            if not outcome.ok:
                log.warning("could not remove leftover binding %s: %s", _show(found), outcome.message)
                return False
            log.info("removed leftover binding %s: %s", _show(found), why)
            if body is not None and fresh is not None and fresh.uid == found.reference.uid:
                self.recorder.event(
                    body,
                    Event(
                        "Warning",
                        Reason.LEFTOVER_BINDING_REMOVED,
                        f"removed {found.role} on {found.resource} from IAM: {why}",
                    ),
                )
            return True

    async def _report_missing(self, key: tuple[str, str], gone: list[tuple[str, str]]) -> bool:
        namespace, name = key
        async with self.lock_for(("request", key)):
            body = await self.kube.get_request(namespace, name)
            if body is None:
                return False
            fresh = known_request(body, self.config.attestation_key)
            status = dict(status_of(body))
            conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
            if not fresh.active or any(
                c.get("type") == BINDINGS_PRESENT and c.get("reason") == REMOVED_EXTERNALLY
                for c in conditions
            ):
                return False  # ended meanwhile, or already reported
            what = ", ".join(f"{role} on {resource}" for resource, role in gone)
            message = (
                f"{what} was removed from IAM by someone else; jitaccess does not grant it again "
                "(whoever removed it may have meant to). File a new request if access is still needed."
            )
            condition = set_condition(
                conditions,
                {
                    "type": BINDINGS_PRESENT,
                    "status": "False",
                    "reason": REMOVED_EXTERNALLY,
                    "message": message,
                    "observedGeneration": generation_of(body),
                },
                self.config.clock.now(),
            )
            kept = [dict(c) for c in conditions if c.get("type") != BINDINGS_PRESENT]
            updated = await self.kube.patch_request_status(
                namespace, name, {"conditions": [*kept, condition]}
            )
            if updated is None:
                return False
            self.cache.remember(key, updated)
            self.recorder.event(updated, Event("Warning", REMOVED_EXTERNALLY, message))
            log.warning("%s/%s: %s", namespace, name, message)
            return True


def _show(found: Found) -> str:
    return f"{found.role} on {found.resource} (of {found.reference.namespace}/{found.reference.name})"
