"""Leader election on a coordination.k8s.io Lease: two replicas, exactly one of them acting.

Both replicas watch every object and serve the admission webhooks (their caches stay current,
and admission needs no leader); only the leader reconciles, writes IAM, posts Events and sweeps.
kopf's own peering does not fit: it freezes every operator whose priority equals another's,
and the replicas of one Deployment share theirs.

The algorithm is client-go's. A lease held by someone else is taken only once its record has
not changed for a whole lease duration, measured on this replica's clock from the moment it saw
the record: the holder's renewTime is never compared with our clock, because the clocks of two
nodes differ. The leader renews every retry period and steps down when it could not renew for
`renew_deadline`, which is shorter than the lease duration, so it has stopped acting before
anybody may take over. Every write is conditional on the resourceVersion just read, so two
replicas campaigning at once cannot both win.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from jitaccess.clock import Clock
from jitaccess.controller.logs import set_leading

log = logging.getLogger(__name__)
CONFLICT = 409


@dataclass(frozen=True)
class LeaseTimings:
    duration: timedelta = timedelta(seconds=15)  # how long a silent holder keeps the lease
    renew_deadline: timedelta = timedelta(seconds=10)  # how long the leader tries before it steps down
    retry_period: timedelta = timedelta(seconds=2)  # how often the lease is renewed or tried

    def __post_init__(self) -> None:
        if not timedelta(0) < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.duration}): the leader must "
                "give up before anybody else may take the lease"
            )


@dataclass(frozen=True)
class _Seen:
    holder: str
    version: str
    duration: timedelta


class LeaderElector:
    def __init__(
        self,
        api: client.CoordinationV1Api,
        namespace: str,
        name: str,
        identity: str,
        clock: Clock,
        timings: LeaseTimings | None = None,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs an identity for this replica (e.g. the pod name)")
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.clock = clock
        self.timings = timings or LeaseTimings()
        self.leading = False
        self.terms = 0  # how often this replica became the leader
        self._seen: _Seen | None = None
        self._seen_at: datetime | None = None
        self._renewed_at: datetime | None = None
        self._attempt: tuple[str, datetime] | None = None  # the renewTime last sent, and when

    @property
    def holder(self) -> str:
        """Who held the lease when this replica last looked ("" when nobody)."""
        return self._seen.holder if self._seen else ""

    async def run(
        self, on_started: Callable[[], Awaitable[None]], on_stopped: Callable[[], Awaitable[None]]
    ) -> None:
        """Campaign; lead (between `on_started` and `on_stopped`) while the lease is ours; repeat."""
        while True:
            await self._campaign()
            self.leading = True
            set_leading(True)
            self.terms += 1
            log.info("%s is the leader (lease %s/%s)", self.identity, self.namespace, self.name)
            try:
                await on_started()
                await self._hold()
                log.error(
                    "%s lost the lease %s/%s (held by %r now); it stops acting and stands by",
                    self.identity,
                    self.namespace,
                    self.name,
                    self.holder,
                )
            finally:
                self.leading = False
                set_leading(False)
                await on_stopped()

    async def release(self, attempts: int = 3) -> None:
        """At shutdown, after the work stopped: hand the lease over now, not a lease duration later.

        The lease is read afresh: a renewal cancelled by the shutdown may still have landed.
        """
        if self._seen is None or self._seen.holder != self.identity:
            return
        for _ in range(attempts):
            try:
                lease = await asyncio.to_thread(self._read)
                if lease is None or (lease.spec.holder_identity or "") != self.identity:
                    return  # not ours (any more): nothing to hand over
                now = _micro_time(self.clock.now())
                patch = {
                    "metadata": {"resourceVersion": lease.metadata.resource_version},
                    "spec": {
                        "holderIdentity": None,
                        "leaseDurationSeconds": 1,
                        "renewTime": now,
                        "acquireTime": now,
                    },
                }
                await asyncio.to_thread(self._patch, patch)
            except Exception as error:
                if isinstance(error, ApiException) and error.status == CONFLICT:
                    continue  # our own late renewal: read again
                # The successor waits out one lease duration instead.
                log.warning("could not release the lease %s/%s: %s", self.namespace, self.name, error)
                return
            self._seen = None
            log.info("%s released the lease %s/%s", self.identity, self.namespace, self.name)
            return
        log.warning("could not release the lease %s/%s: it kept changing", self.namespace, self.name)

    async def _campaign(self) -> None:
        while not await self._try_safely():
            await asyncio.sleep(self.timings.retry_period.total_seconds())

    async def _hold(self) -> None:
        """Renew until that fails for renew_deadline, or somebody else holds the lease.

        Each round tries first and looks at the deadline only after a failure: a lease renewed
        just now is ours whatever the clock did in between.
        """
        retry_s = self.timings.retry_period.total_seconds()
        while True:
            await asyncio.sleep(retry_s)
            while not await self._renew():
                if self.holder and self.holder != self.identity:
                    return  # taken: somebody else acts now
                if self._time_to_deadline() <= 0 and not await self._landed():
                    return
                await asyncio.sleep(min(retry_s, max(self._time_to_deadline(), 0.0)) or retry_s)

    async def _renew(self) -> bool:
        """One renewal, given no longer than the time left before the renew deadline."""
        retry_s = self.timings.retry_period.total_seconds()
        remaining = self._time_to_deadline()
        try:  # asyncio.timeout, not wait_for, which can swallow a cancellation in 3.11
            async with asyncio.timeout(min(retry_s, remaining) if remaining > 0 else retry_s):
                return await self._try_safely()
        except TimeoutError:
            return False

    async def _landed(self) -> bool:
        """Did a renewal whose answer came too late (a loaded API server or replica) land after
        all? If the lease, read afresh, still carries the renewTime of our last attempt, nobody
        wrote since, and a standby counts its lease duration from no earlier than the moment we
        sent it: that moment is our last renewal. Our own renewal is not a lost lease."""
        if self._attempt is None:
            return False
        sent, at = self._attempt
        try:
            async with asyncio.timeout(self._timeout):
                lease = await asyncio.to_thread(self._read)
        except Exception as error:  # as unreachable as the renewals were
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False
        spec = lease.spec if lease is not None else None
        if spec is None or spec.holder_identity != self.identity or _stamp(spec.renew_time) != sent:
            return False
        self._observe(lease, self.clock.now())
        self._renewed_at = max(self._renewed_at or at, at)
        if self._time_to_deadline() <= 0:
            return False
        log.info(
            "%s's late renewal of the lease %s/%s landed; it leads on",
            self.identity,
            self.namespace,
            self.name,
        )
        return True

    def _time_to_deadline(self) -> float:
        assert self._renewed_at is not None
        return (self._renewed_at + self.timings.renew_deadline - self.clock.now()).total_seconds()

    async def _try_safely(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except Exception as error:  # API refused, unreachable (urllib3's errors), timed out: not renewed
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False

    async def try_acquire_or_renew(self) -> bool:
        """One round: True when this replica holds the lease afterwards."""
        now = self.clock.now()
        lease = await asyncio.to_thread(self._read)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._record(now, acquired=True, transitions=0),
            }
            try:
                created = await asyncio.to_thread(
                    self.api.create_namespaced_lease, self.namespace, body, _request_timeout=self._timeout
                )
            except ApiException as error:
                if error.status == CONFLICT:  # another replica created it first
                    return False
                raise
            return self._held(created, now)
        seen = self._observe(lease, now)
        if seen.holder and seen.holder != self.identity:
            assert self._seen_at is not None
            if now < self._seen_at + seen.duration:
                return False
            log.info("the lease %s/%s of %r expired; taking it", self.namespace, self.name, seen.holder)
        spec = lease.spec
        taking = seen.holder != self.identity
        transitions = (spec.lease_transitions or 0) + (1 if taking and seen.holder else 0)
        patch = {
            "metadata": {"resourceVersion": seen.version},  # a precondition: 409 if anyone wrote since
            "spec": self._record(now, acquired=taking, transitions=transitions),
        }
        self._attempt = (patch["spec"]["renewTime"], now)
        try:
            updated = await asyncio.to_thread(self._patch, patch)
        except ApiException as error:
            if error.status == CONFLICT:
                return False
            raise
        return self._held(updated, now)

    @property
    def _timeout(self) -> float:
        return self.timings.retry_period.total_seconds()

    def _read(self) -> Any:
        try:
            return self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _patch(self, patch: dict[str, Any]) -> Any:
        return self.api.patch_namespaced_lease(
            self.name,
            self.namespace,
            patch,
            _content_type="application/merge-patch+json",
            _request_timeout=self._timeout,
        )

    def _record(self, now: datetime, *, acquired: bool, transitions: int) -> dict[str, Any]:
        record: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timings.duration.total_seconds())),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }
        if acquired:
            record["acquireTime"] = _micro_time(now)
        return record

    def _observe(self, lease: Any, now: datetime) -> _Seen:
        spec = lease.spec
        seconds = spec.lease_duration_seconds if spec and spec.lease_duration_seconds else None
        seen = _Seen(
            holder=(spec.holder_identity if spec else None) or "",
            version=str(lease.metadata.resource_version or ""),
            duration=timedelta(seconds=seconds) if seconds else self.timings.duration,
        )
        if seen != self._seen:
            self._seen, self._seen_at = seen, now
        return seen

    def _held(self, lease: Any, now: datetime) -> bool:
        seen = self._observe(lease, now)
        if seen.holder != self.identity:
            return False
        self._renewed_at = now
        return True


def _stamp(value: Any) -> str:
    """A renewTime as the client returns it (a datetime) or as it was sent (a string)."""
    return _micro_time(value.astimezone(UTC)) if isinstance(value, datetime) else str(value or "")


def _micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
