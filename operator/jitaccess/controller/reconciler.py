"""Carry out the lifecycle's decisions for one ActivationRequest at a time.

Holds the latest body of every request and grant seen (fed by kopf's watch events and by the
answers to our own patches), serialises work per request, and loops `decide → persist` until
the request is stable, then tells the scheduler when to look again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from jitaccess.api.objects import GROUP, VERSION, Grant, parse_grant
from jitaccess.api.times import parse_time
from jitaccess.controller.audit import AuditLog, audit_record
from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.kube import Kube
from jitaccess.controller.notify import KINDS, NoSender, Sender, notification
from jitaccess.controller.scheduler import Scheduler
from jitaccess.iam.bindings import Binding, render
from jitaccess.iam.writer import IamWriter, Outcome
from jitaccess.policy.admission import attestation_valid
from jitaccess.policy.approvals import Decision, read_decision
from jitaccess.policy.grants import grant_status
from jitaccess.policy.lifecycle import FINALIZER, TERMINAL, Event, Phase, Step, decide, read_state
from jitaccess.stats import LATENCY_BUCKETS, Distribution

log = logging.getLogger(__name__)
RequestKey = tuple[str, str]
MAX_STEPS = 12
RETRY_BASE = timedelta(seconds=2)
RETRY_CAP = timedelta(minutes=5)
GRANT_COUNT_DELAY = timedelta(seconds=1)


class Reconciler:
    def __init__(self, config: OperatorConfig, kube: Kube, writer: IamWriter) -> None:
        self.config = config
        self.clock = config.clock
        self.kube = kube
        self.writer = writer
        self.requests: dict[RequestKey, dict[str, Any]] = {}
        self.grant_bodies: dict[str, dict[str, Any]] = {}
        self.grants: dict[str, Grant | None] = {}
        self.deleted_grants: set[str] = set()
        self.by_grant: dict[str, set[RequestKey]] = defaultdict(set)
        self.approvals: dict[RequestKey, dict[str, dict[str, Any]]] = {}
        self.failures: dict[Hashable, int] = {}
        self.reconciles = 0
        self.activation_latency = Distribution(LATENCY_BUCKETS)  # creation -> Active, seconds
        self.expiry_lag = Distribution(LATENCY_BUCKETS)  # expiresAt -> binding removed, seconds
        self.webhook_decisions: Counter[tuple[str, str]] = Counter()  # (webhook, allowed|denied)
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._event_posts: dict[RequestKey, asyncio.Task[None]] = {}
        self.sweeper: Any = None  # controller.sweeper.Sweeper, when sweeping is on
        self.elector: Any = None  # controller.leader.LeaderElector, with --leader-elect
        self.audit: AuditLog | None = AuditLog.to(config.audit_log)
        self.loop: asyncio.AbstractEventLoop | None = None  # the operator's, once it runs
        self.notifier: Sender = NoSender()
        self.scheduler = Scheduler(
            self.work, self.clock, tick_s=config.tick_s, concurrency=config.concurrency
        )

    # -- what the watches tell us ---------------------------------------------------------

    def observe_request(self, body: Mapping[str, Any]) -> None:
        key = _key(body)
        known = self.requests.get(key)
        if not self._is_newer(known, body) or _same_version(known, body):
            return  # old news, or the echo of our own write, which that reconcile already went on from
        self.requests[key] = dict(body)
        grant = (body.get("spec") or {}).get("grant")
        if isinstance(grant, str):
            self.by_grant[grant].add(key)
        self.scheduler.schedule(("request", key))

    def forget_request(self, body: Mapping[str, Any]) -> None:
        key = _key(body)
        self.requests.pop(key, None)
        self.scheduler.cancel(("request", key))
        grant = (body.get("spec") or {}).get("grant")
        if isinstance(grant, str):
            self.by_grant[grant].discard(key)
            self.scheduler.schedule(("grant", grant))

    def observe_approval(self, body: Mapping[str, Any]) -> None:
        namespace, name = _key(body)
        request = str((body.get("spec") or {}).get("request", ""))
        self.approvals.setdefault((namespace, request), {})[name] = dict(body)
        self.scheduler.schedule(("request", (namespace, request)))

    def forget_approval(self, body: Mapping[str, Any]) -> None:
        namespace, name = _key(body)
        request = str((body.get("spec") or {}).get("request", ""))
        self.approvals.get((namespace, request), {}).pop(name, None)
        self.scheduler.schedule(("request", (namespace, request)))

    def decisions(self, key: RequestKey) -> tuple[Decision, ...]:
        key_bytes = self.config.attestation_key
        return tuple(
            read_decision(body, attestation_valid(body, key_bytes) if key_bytes else True)
            for body in self.approvals.get(key, {}).values()
        )

    def observe_grant(self, body: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        if not self._is_newer(self.grant_bodies.get(name), body):
            return
        known = name in self.grants
        previous = self.grants.get(name)
        self.grant_bodies[name] = dict(body)
        self.grants[name], _ = parse_grant(body)
        self.deleted_grants.discard(name)
        self.scheduler.schedule(("grant", name))
        if known and self.grants[name] == previous:
            return  # a status write (ours): nothing a request depends on changed
        for key in list(self.by_grant.get(name, ())):
            self.scheduler.schedule(("request", key))

    def forget_grant(self, name: str) -> None:
        self.grant_bodies.pop(name, None)
        self.grants.pop(name, None)
        self.deleted_grants.add(name)
        for key in list(self.by_grant.get(name, ())):
            self.scheduler.schedule(("request", key))

    async def grant(self, name: str) -> Grant | None:
        """The grant by name; on a cache miss ask the API, because the watch may lag a fresh grant.

        Only absence is confirmed this way: a grant the cache holds is current (watch events are
        ordered), and one whose deletion the watch reported is gone without asking again.
        """
        if name in self.grants or name in self.deleted_grants:
            return self.grants.get(name)
        body = await self.kube.get_grant(name)
        if body is None:
            return None
        self.observe_grant(body)
        return self.grants.get(name)

    def resync(self) -> None:
        """Look at everything known again: what a replica does when it becomes the leader, since
        while it stood by it watched but acted on nothing."""
        for name in list(self.grant_bodies):
            self.scheduler.schedule(("grant", name))
        for key in list(self.requests):
            self.scheduler.schedule(("request", key))

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
            self.reconciles += 1
            try:
                if kind == "request":
                    await self.reconcile_request(key)
                else:
                    await self.reconcile_grant(key)
                self.failures.pop(item, None)
            except Exception as error:
                attempts = self.failures[item] = self.failures.get(item, 0) + 1
                delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(attempts, 10))
                log.warning("reconciling %s failed (%s); retrying in %s", item, error, delay)
                self.scheduler.schedule(item, self.clock.now() + delay)

    async def reconcile_request(self, key: RequestKey) -> None:
        await self._adopt_approvals(key)
        for _ in range(MAX_STEPS):
            body = self.requests.get(key)
            if body is None:
                return
            state = read_state(body, self.config.attestation_key)
            grant = await self.grant(state.spec.grant) if state.spec else None
            step = decide(state, grant, self.clock.now(), self.config.history_retention, self.decisions(key))
            if not step.changes_anything:
                if step.requeue_at is not None:
                    self.scheduler.schedule(("request", key), step.requeue_at)
                return
            if not await self._carry_out(key, body, step):
                return
        log.error("request %s/%s did not settle after %d steps", *key, MAX_STEPS)

    async def _carry_out(self, key: RequestKey, body: dict[str, Any], step: Step) -> bool:
        """Persist one step; False when the request needs no further step now."""
        namespace, name = key
        if step.iam is not None:
            bindings = [Binding.from_status(raw) for raw in step.iam.bindings]
            outcome = await self._apply_iam(step.iam.kind, bindings)
            if outcome.ok:
                follow = step.on_success
            elif outcome.permanent and step.on_failure is not None:
                follow = _with_reason(
                    step.on_failure,
                    f"IAM refused the change: {outcome.message.rstrip('.')}; nothing was granted",
                )
            else:
                attempts = self.failures[("request", key)] = self.failures.get(("request", key), 0) + 1
                delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(attempts, 10))
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
        if step.add_finalizer or step.remove_finalizer:
            current = list(body.get("metadata", {}).get("finalizers") or [])
            wanted = [*current, FINALIZER] if step.add_finalizer else [f for f in current if f != FINALIZER]
            updated = await self.kube.patch_request(namespace, name, {"metadata": {"finalizers": wanted}})
            self._remember(key, updated)
        if step.status is not None:
            status = dict(step.status)
            if step.activation is not None:
                status["bindings"] = [binding.to_status() for binding in render(step.activation)]
            updated = await self.kube.patch_request_status(namespace, name, status)
            self._remember(key, updated)
            if updated is not None:
                self._measure(body, status)
            if updated is not None and status.get("phase") in _COUNTED_PHASES:
                # The grant's activeRequests count: one status write a second at most, however busy.
                self.scheduler.schedule(
                    ("grant", updated.get("spec", {}).get("grant")), self.clock.now() + GRANT_COUNT_DELAY
                )
            if step.event is not None:
                self._post_event(key, updated or body, step.event)
                self._notify(updated or body, step)
        return key in self.requests

    def _measure(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Activation latency and expiry lag, at the status write that ends each."""
        phase, now = status.get("phase"), self.clock.now()
        try:
            if phase == Phase.ACTIVE.value:
                created = parse_time((body.get("metadata") or {}).get("creationTimestamp"))
                self.activation_latency.observe(max(0.0, (now - created).total_seconds()))
            elif phase == Phase.EXPIRED.value:
                expires = parse_time(status.get("expiresAt") or (body.get("status") or {}).get("expiresAt"))
                self.expiry_lag.observe(max(0.0, (now - expires).total_seconds()))
        except ValueError:
            return  # no timestamp to measure from (a request seeded without one)

    def lock_for(self, item: Hashable) -> asyncio.Lock:
        """The lock a reconcile of `item` holds; the sweeper takes it to act on the same request."""
        return self._locks.setdefault(item, asyncio.Lock())

    def remember(self, key: RequestKey, updated: dict[str, Any] | None) -> None:
        self._remember(key, updated)

    def post_event_now(self, body: Mapping[str, Any], event: Event) -> None:
        self._post_event(_key(body), body, event)

    def _post_event(self, key: RequestKey, body: Mapping[str, Any], event: Event) -> None:
        """Post the Event off the hot path (an activation need not wait for its record), but after
        the request's previous Event, so that they read in the order things happened. The audit
        line is written at once: it is the durable record, the Event a convenience."""
        if self.audit is not None:
            grant = self.grants.get(str((body.get("spec") or {}).get("grant") or ""))
            resource = grant.resource if grant is not None else None
            self.audit.record(audit_record(body, event, self.clock.now(), resource))
        previous = self._event_posts.get(key)

        async def post() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self.kube.post_event(dict(body), event)

        task = asyncio.create_task(post(), name=f"event {key[0]}/{key[1]} {event.reason}")
        self._event_posts[key] = task
        task.add_done_callback(lambda done: self._event_done(key, done))

    def _event_done(self, key: RequestKey, task: asyncio.Task[None]) -> None:
        if self._event_posts.get(key) is task:
            del self._event_posts[key]
        if not task.cancelled() and task.exception() is not None:
            log.warning("posting an Event for %s/%s failed: %s", *key, task.exception())

    async def flush_events(self, timeout_s: float = 5.0) -> None:
        """At shutdown: give the Events still being posted a moment to land."""
        pending = list(self._event_posts.values())
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    def _notify(self, body: Mapping[str, Any], step: Step) -> None:
        assert step.event is not None and step.status is not None
        kind = KINDS.get(step.event.reason)
        approved = any(
            c.get("type") == "Approved" and c.get("status") == "True"
            for c in step.status.get("conditions", [])
        )
        if approved and step.status.get("phase") in (Phase.SCHEDULED.value, Phase.ACTIVATING.value):
            kind = "approved"
        if kind is not None:
            self.notifier.publish(notification(kind, body, step.event.reason, step.event.message))

    async def _adopt_approvals(self, key: RequestKey) -> None:
        """Each approval is owned by its request, so deleting the request deletes its approvals."""
        request = self.requests.get(key)
        uid = ((request or {}).get("metadata") or {}).get("uid")
        if not uid:
            return
        owner = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationRequest",
            "name": key[1],
            "uid": uid,
            "blockOwnerDeletion": False,
            "controller": False,
        }
        for name, body in list(self.approvals.get(key, {}).items()):
            owners = (body.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("uid") == uid for o in owners):
                continue
            updated = await self.kube.patch_approval(
                key[0], name, {"metadata": {"ownerReferences": [*owners, owner]}}
            )
            if updated is not None:
                self.approvals.setdefault(key, {})[name] = updated

    async def _apply_iam(self, kind: str, bindings: list[Binding]) -> Outcome:
        by_resource: dict[str, list[Binding]] = defaultdict(list)
        for binding in bindings:
            by_resource[binding.resource].append(binding)
        outcome = Outcome(ok=True)
        for resource, group in by_resource.items():  # one resource per request: one atomic write
            if kind == "add":
                outcome = await self.writer.apply(resource, add=group)
            else:
                outcome = await self.writer.apply(resource, remove=group)
            if not outcome.ok:
                return outcome
        return outcome

    async def reconcile_grant(self, name: str) -> None:
        body = self.grant_bodies.get(name)
        if body is None:
            return
        active = sum(
            1
            for key in self.by_grant.get(name, ())
            if (self.requests.get(key, {}).get("status") or {}).get("phase") == Phase.ACTIVE.value
        )
        status = grant_status(body, active, self.clock.now())
        if status is not None:
            updated = await self.kube.patch_grant_status(name, status)
            if updated is not None:
                self.grant_bodies[name] = updated

    def _remember(self, key: RequestKey, updated: dict[str, Any] | None) -> None:
        if updated is None:
            self.requests.pop(key, None)
        elif self._is_newer(self.requests.get(key), updated):
            self.requests[key] = updated

    @staticmethod
    def _is_newer(known: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> bool:
        """Is `seen` at least as new as `known`? resourceVersions compare as numbers when they are."""
        if known is None:
            return True
        old = str(known.get("metadata", {}).get("resourceVersion", ""))
        new = str(seen.get("metadata", {}).get("resourceVersion", ""))
        if old.isdigit() and new.isdigit():
            return int(new) >= int(old)
        return True


def _same_version(known: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> bool:
    version = (seen.get("metadata") or {}).get("resourceVersion")
    return (
        known is not None
        and bool(version)
        and (known.get("metadata") or {}).get("resourceVersion") == version
    )


# Transitions into these change a grant's count of active requests.
_COUNTED_PHASES = frozenset(phase.value for phase in (Phase.ACTIVE, *TERMINAL))


def _key(body: Mapping[str, Any]) -> RequestKey:
    metadata = body.get("metadata", {})
    return metadata.get("namespace", ""), metadata.get("name", "")


def _with_reason(step: Step, message: str) -> Step:
    """The failure step, with IAM's own words in its condition message and Event."""
    status = dict(step.status or {})
    conditions = [dict(condition, message=message) for condition in status.get("conditions", [])]
    status["conditions"] = conditions
    event = replace(step.event, message=message) if step.event else None
    return replace(step, status=status, event=event)
