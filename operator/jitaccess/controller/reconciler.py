"""Carry out the lifecycle's decisions for one ActivationRequest at a time.

Holds the latest body of every request and grant seen (fed by kopf's watch events and by the
answers to our own patches), serialises work per request, and loops `decide → persist` until
the request is stable, then tells the scheduler when to look again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from jitaccess.api.bindings import Reference
from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.objects import Grant
from jitaccess.api.phases import TERMINAL, Phase
from jitaccess.controller.approval_sync import adopt_approvals, report_approvals
from jitaccess.controller.audit import AuditLog
from jitaccess.controller.cache import Cache, RequestKey, key_of
from jitaccess.controller.channels import Channel
from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.health import Health
from jitaccess.controller.iam_steps import apply_iam, clear_after_refusal, iam_problem, with_reason
from jitaccess.controller.kube import Kube
from jitaccess.controller.outbox import Outbox
from jitaccess.controller.recorder import Recorder
from jitaccess.controller.related import related_keys, related_of
from jitaccess.controller.scheduler import Scheduler
from jitaccess.controller.slack_actions import SlackActions
from jitaccess.controller.sweeper import Sweeper
from jitaccess.controller.telemetry import Metrics
from jitaccess.iam.store import PolicyStore
from jitaccess.iam.writer import IamWriter
from jitaccess.policy.grants import grant_status
from jitaccess.policy.lifecycle import ENDS_BY_ELIGIBILITY, decide
from jitaccess.policy.records import (
    read_records,
)
from jitaccess.policy.steps import RequestState, Step, metadata_patch, read_state

if TYPE_CHECKING:
    from jitaccess.controller.leader import LeaderElector

log = logging.getLogger(__name__)
MAX_STEPS = 12
RETRY_BASE = timedelta(seconds=2)
RETRY_CAP = timedelta(minutes=5)
GRANT_COUNT_DELAY = timedelta(seconds=1)


class Reconciler:
    """Serialises work per request and loops `decide -> persist` until it is stable; what it
    knows is in `cache`, what it tells people goes through `recorder`, what it counts in `metrics`."""

    def __init__(
        self,
        config: OperatorConfig,
        kube: Kube,
        writer: IamWriter,
        *,
        cache: Cache | None = None,
        metrics: Metrics | None = None,
        channels: Sequence[Channel] = (),
        elector: LeaderElector | None = None,
        store: PolicyStore | None = None,
    ) -> None:
        self.config = config
        self.clock = config.clock
        self.kube = kube
        self.writer = writer
        self.cache = cache or Cache()
        self.metrics = metrics or Metrics()
        # Notices are sent once each, by whichever replica leads (the outbox says which were).
        self.outbox = Outbox(kube, channels, self.cache, config.attestation_key) if channels else None
        self.recorder = Recorder(
            kube,
            self.clock,
            config.attestation_key,
            self._resource_of,
            AuditLog.to(config.audit_log),
            self.outbox,
        )
        self.elector = elector
        self.slack_actions: SlackActions | None = None  # Approve/Deny clicks, when Slack's are accepted
        self.health = Health()
        self.failures: dict[Hashable, int] = {}
        # Requests deleted while they held access without the operator's finalizer: (resource, owners).
        self.orphans: dict[RequestKey, tuple[str, tuple[Reference, ...]]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self.scheduler = Scheduler(
            self.work, self.clock, tick_s=config.tick_s, concurrency=config.concurrency
        )
        # Sweeps IAM (given the store) every config.sweep_interval, under this reconciler's locks.
        self.sweeper = (
            Sweeper(
                store, kube, writer, self.cache, self.recorder, config, self.lock_for, config.sweep_interval
            )
            if store is not None and config.sweep_interval.total_seconds() > 0
            else None
        )
        if elector is not None:
            self.scheduler.pause()  # until this replica holds the Lease

    # -- what the watches tell us ---------------------------------------------------------

    def observe_request(self, body: Mapping[str, Any]) -> None:
        if self.cache.put_request(body):
            self.scheduler.schedule(("request", key_of(body)))

    def forget_request(self, body: Mapping[str, Any]) -> None:
        key = key_of(body)
        known = self.cache.drop_request(body)
        self.scheduler.cancel(("request", key))
        self.metrics.revocations_failing.discard(key)
        if self.outbox is not None:
            self.outbox.forget(key)
        records = read_records(metadata_of(known), self.config.attestation_key)
        if records.held is not None and records.ended is None:
            # Deleted while holding access, without our finalizer (stripped by someone who got past
            # admission): remove its bindings now rather than at the next sweep.
            owners = read_state(known, self.config.attestation_key).owners
            self.orphans[key] = (records.held.resource, owners)
            self.scheduler.schedule(("orphan", key))
        grant = spec_of(body).get("grant")
        if isinstance(grant, str):
            self.scheduler.schedule(("grant", grant))

    def observe_approval(self, body: Mapping[str, Any]) -> None:
        self.scheduler.schedule(("request", self.cache.put_approval(body)))

    def forget_approval(self, body: Mapping[str, Any]) -> None:
        self.scheduler.schedule(("request", self.cache.drop_approval(body)))

    def observe_grant(self, body: Mapping[str, Any]) -> None:
        changed = self.cache.put_grant(body)
        if changed is None:
            return
        name = body["metadata"]["name"]
        self.scheduler.schedule(("grant", name))
        if changed:  # not merely a status write (ours): re-judge every request under it
            for key in list(self.cache.by_grant.get(name, ())):
                self.scheduler.schedule(("request", key))

    def forget_grant(self, name: str) -> None:
        self.cache.drop_grant(name)
        for key in list(self.cache.by_grant.get(name, ())):
            self.scheduler.schedule(("request", key))

    async def grant(self, name: str) -> Grant | None:
        """The grant by name; on a cache miss ask the API, because the watch may lag a fresh grant.

        Only absence is confirmed this way: a grant the cache holds is current (watch events are
        ordered), and one whose deletion the watch reported is gone without asking again.
        """
        if self.cache.knows_grant(name):
            return self.cache.grants.get(name)
        body = await self.kube.get_grant(name)
        if body is None:
            return None
        self.observe_grant(body)
        return self.cache.grants.get(name)

    async def stop_notices(self, grace_s: float = 0.0) -> None:
        """As this replica stops leading: the next leader sends what is still queued."""
        if self.outbox is not None:
            await self.outbox.stop(grace_s)

    def _resource_of(self, grant: str) -> str | None:
        found = self.cache.grants.get(grant)
        return found.resource if found is not None else None

    def resync(self) -> None:
        """Look at everything known again: what a replica does when it becomes the leader, since
        while it stood by it watched but acted on nothing."""
        for name in list(self.cache.grant_bodies):
            self.scheduler.schedule(("grant", name))
        for key in list(self.cache.requests):
            self.scheduler.schedule(("request", key))
        for key in list(self.orphans):
            self.scheduler.schedule(("orphan", key))

    @property
    def leading(self) -> bool:
        """Does this replica act? Always, without leader election."""
        return self.elector is None or self.elector.leading

    async def load_grants(self) -> None:
        """Know every grant before judging any request: a grant not yet seen is not a deleted one."""
        for body in await self.kube.list_grants():
            self.observe_grant(body)

    # -- work ---------------------------------------------------------------------------------

    async def work(self, item: Hashable) -> None:
        kind, key = item  # type: ignore[misc]
        async with self.lock_for(item):
            self.metrics.reconciles += 1
            try:
                if kind == "request":
                    await self.reconcile_request(key)
                elif kind == "orphan":
                    await self.remove_orphan(key)
                else:
                    await self.reconcile_grant(key)
                self.failures.pop(item, None)
            except Exception as error:
                self.metrics.reconcile_errors[kind] += 1
                attempts = self.failures[item] = self.failures.get(item, 0) + 1
                delay = _backoff(attempts)
                log.warning("reconciling %s failed (%s); retrying in %s", item, error, delay)
                self.scheduler.schedule(item, self.clock.now() + delay)

    async def reconcile_request(self, key: RequestKey) -> None:
        await adopt_approvals(self.kube, self.cache, key)
        if self.outbox is not None:
            self.outbox.adopt(key)  # notices queued (or being sent) under an earlier leader
        confirmed = False
        for _ in range(MAX_STEPS):
            body = self.cache.requests.get(key)
            if body is None:
                return
            state = read_state(body, self.config.attestation_key)
            step = await self._decide(key, state)
            ending = step.ending
            if ending is not None and ending.reason in ENDS_BY_ELIGIBILITY and not confirmed:
                # Judged on cached grant and approvals: read both afresh before ending anything.
                await self._refresh_inputs(key, state)
                confirmed = True
                step = await self._decide(key, state)
            await report_approvals(self.kube, self.cache, key, step.reports)
            if not step.changes_anything:
                if step.requeue_at is not None:
                    self.scheduler.schedule(("request", key), step.requeue_at)
                return
            if not await self._carry_out(key, body, step):
                return
            for other in related_keys(self.cache, key, state):  # an extension and what it extends
                self.scheduler.schedule(("request", other), self.clock.now())
        log.error("request %s/%s did not settle after %d steps", *key, MAX_STEPS)

    async def _decide(self, key: RequestKey, state: RequestState) -> Step:
        grant = await self.grant(state.spec.grant) if state.spec else None
        error = self.cache.grant_error(state.spec.grant) if state.spec and grant is None else ""
        decisions = self.cache.decisions(key, self.config.attestation_key)
        now = self.clock.now()
        return decide(
            state,
            grant,
            now,
            self.config.history_retention,
            decisions,
            error,
            related_of(self.cache, key, state, self.config.attestation_key),
        )

    async def _refresh_inputs(self, key: RequestKey, state: RequestState) -> None:
        """The request's grant and approvals as the API holds them now, into the caches."""
        if state.spec is not None:
            body = await self.kube.get_grant(state.spec.grant)
            if body is None:
                self.forget_grant(state.spec.grant)
            else:
                self.observe_grant(body)
        fresh = {
            str(body["metadata"]["name"]): body
            for body in await self.kube.list_approvals(key[0])
            if spec_of(body).get("request") == key[1]
        }
        self.cache.approvals[key] = fresh

    async def _carry_out(self, key: RequestKey, body: dict[str, Any], step: Step) -> bool:
        """Persist one step; False when the request needs no further step now."""
        namespace, name = key
        if step.iam and step.status is not None:
            # The intent is shown before IAM is written (once: not again on every retry).
            await self._show_once(key, body, replace(step, iam=()))
            body = self.cache.requests.get(key, body)
        if step.iam:
            slow = step.on_slow
            outcome = await apply_iam(
                self.writer,
                step.iam,
                (lambda: self._show_once(key, body, slow)) if slow is not None else None,
            )
            removing = not any(change.hold for change in step.iam)
            if removing:
                self.metrics.removal(key, outcome.ok)
            if outcome.ok:
                follow = step.on_success
            elif outcome.permanent and step.on_failure is not None and step.on_failure.ending is not None:
                follow = with_reason(
                    step.on_failure,
                    f"IAM refused the change: {outcome.message.rstrip('.')}; nothing was granted",
                )
                if follow.iam and not removing:
                    follow = await clear_after_refusal(self.writer, self.metrics, key, follow, outcome)
            else:
                shown = step.on_failure if outcome.permanent else step.on_retry
                if shown is not None:
                    await self._show_once(key, body, with_reason(shown, iam_problem(shown, outcome)))
                attempts = self.failures[("request", key)] = self.failures.get(("request", key), 0) + 1
                delay = _backoff(attempts)
                log.warning(
                    "IAM change for %s/%s not done (%s); retrying in %s",
                    namespace,
                    name,
                    outcome.message,
                    delay,
                )
                self.scheduler.schedule(("request", key), self.clock.now() + delay)
                return False
            return await self._carry_out(key, body, follow) if follow is not None else True
        if step.delete:
            log.info("deleting %s/%s: %s", namespace, name, "; ".join(step.notes))
            await self.kube.delete_request(namespace, name)
            return False
        if step.record_held is not None or step.add_finalizer:
            # Sealed before anything shows it (and, for a window, before IAM hears of it).
            sealed = await self._patch_metadata(key, body, step, held=True)
            if sealed is None:
                return False  # gone
            body = sealed
        if step.status is not None:
            # A status only told (Activating before a prompt IAM write) is not written.
            updated = None if step.status_told_only else await self._write_status(key, body, step.status)
            if step.event is not None:
                self.recorder.event(updated or body, step.event, step.status)
                self.recorder.notify(body, updated or body, step)
            body = updated or body
        if step.record_ended is not None or step.remove_finalizer:
            await self._patch_metadata(key, body, step, held=False)
        return key in self.cache.requests

    async def _patch_metadata(
        self, key: RequestKey, body: dict[str, Any], step: Step, *, held: bool
    ) -> dict[str, Any] | None:
        """One metadata patch: the sealed record of this step, and our finalizer added or released."""
        metadata = {**metadata_of(body), "namespace": key[0], "name": key[1]}
        patch = metadata_patch(metadata, step, self.config.attestation_key, held=held)
        if not patch:
            return body
        if "finalizers" in patch and metadata.get("resourceVersion"):
            # The list is replaced whole: guard it with the version read, so that a finalizer someone
            # else added meanwhile is not lost (a conflict is retried from a fresh read).
            patch["resourceVersion"] = metadata["resourceVersion"]
        updated = await self.kube.patch_request(key[0], key[1], {"metadata": patch})
        self.cache.remember(key, updated)
        return updated

    async def _write_status(
        self, key: RequestKey, body: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any] | None:
        updated = await self.kube.patch_request_status(key[0], key[1], status)
        self.cache.remember(key, updated)
        if updated is not None:
            self.metrics.status_written(body, status, self.clock.now())
        if updated is not None and status.get("phase") in _COUNTED_PHASES:
            # The grant's activeRequests count: one status write a second at most, however busy.
            self.scheduler.schedule(
                ("grant", spec_of(updated).get("grant")), self.clock.now() + GRANT_COUNT_DELAY
            )
        return updated

    async def _show_once(self, key: RequestKey, body: dict[str, Any], step: Step) -> None:
        """Show a step taken around an IAM write (Activating, RevocationFailing), with its Event,
        only when the status does not say it already: not once per retry."""
        if step.status is None or _shows(body, step.status):
            return
        updated = await self._write_status(key, body, step.status)
        if step.event is not None and updated is not None:
            self.recorder.event(updated, step.event, step.status)
            self.recorder.notify(body, updated, step)

    async def remove_orphan(self, key: RequestKey) -> None:
        orphan = self.orphans.get(key)
        if orphan is None:
            return
        resource, owners = orphan
        outcome = await self.writer.apply(resource, owners=owners)
        self.metrics.removal(key, outcome.ok)
        if not outcome.ok:
            raise RuntimeError(
                f"removing the bindings of deleted request {key[0]}/{key[1]}: {outcome.message}"
            )
        if self.orphans.get(key) == orphan:  # another of that name may have come meanwhile
            del self.orphans[key]
        log.warning(
            "%s/%s was deleted while it held access, without the operator's finalizer; its bindings on %s "
            "were removed",
            *key,
            resource,
        )

    def lock_for(self, item: Hashable) -> asyncio.Lock:
        """The lock a reconcile of `item` holds; the sweeper takes it to act on the same request."""
        return self._locks.setdefault(item, asyncio.Lock())

    async def reconcile_grant(self, name: str) -> None:
        body = self.cache.grant_bodies.get(name)
        if body is None:
            return
        active = sum(
            1
            for key in self.cache.by_grant.get(name, ())
            if status_of(self.cache.requests.get(key, {})).get("phase") == Phase.ACTIVE.value
        )
        status = grant_status(body, active, self.clock.now())
        if status is not None:
            updated = await self.kube.patch_grant_status(name, status)
            if updated is not None:
                self.cache.grant_bodies[name] = updated


# Transitions into these change a grant's count of active requests.
_COUNTED_PHASES = frozenset(phase.value for phase in (Phase.ACTIVE, *TERMINAL))


def _shows(body: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Does `body`'s status already show the phase and conditions (status and reason) of `status`?"""
    current = status_of(body)
    if "phase" in status and current.get("phase") != status["phase"]:
        return False
    if "bindings" in status and current.get("bindings") != status["bindings"]:
        return False
    shown = {c.get("type"): c for c in current.get("conditions") or [] if isinstance(c, Mapping)}
    return all(
        shown.get(c.get("type"), {}).get("status") == c.get("status")
        and shown.get(c.get("type"), {}).get("reason") == c.get("reason")
        for c in status.get("conditions") or []
    )


def _backoff(attempts: int) -> timedelta:
    return min(RETRY_CAP, RETRY_BASE * 2 ** min(attempts, 10))
