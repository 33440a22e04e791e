"""What the operator counts as it works, for /metrics (controller/metrics.py exposes it).

Plain counters and distributions bumped on the event loop, read by the scrape on the same loop:
no locks, nothing kept per request beyond the set of requests whose removal is failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.phases import Phase
from jitaccess.api.times import parse_time
from jitaccess.controller.cache import RequestKey
from jitaccess.policy.conditions import APPROVED
from jitaccess.stats import LATENCY_BUCKETS, Distribution

RECONCILED_KINDS = ("request", "grant", "orphan")  # what the scheduler's items name


@dataclass
class Metrics:
    reconciles: int = 0
    # Reconciles that raised (and were retried with backoff), by item kind; every kind from 0.
    reconcile_errors: Counter[str] = field(
        default_factory=lambda: Counter(dict.fromkeys(RECONCILED_KINDS, 0))
    )
    activation_latency: Distribution = field(default_factory=lambda: Distribution(LATENCY_BUCKETS))
    expiry_lag: Distribution = field(default_factory=lambda: Distribution(LATENCY_BUCKETS))
    webhook_decisions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (webhook, allowed|denied)
    webhook_duration: dict[str, Distribution] = field(default_factory=dict)  # webhook -> handler seconds
    revocation_failures: int = 0  # removals from IAM that failed, each attempt
    revocations_failing: set[RequestKey] = field(default_factory=set)  # requests whose removal is retried

    def status_written(self, body: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> None:
        """Activation latency and expiry lag, at the status write that ends each."""
        phase = status.get("phase")
        try:
            if phase == Phase.ACTIVE.value:
                since = _could_start_at(body, status)
                self.activation_latency.observe(max(0.0, (now - since).total_seconds()))
            elif phase == Phase.EXPIRED.value:
                expires = parse_time(status.get("expiresAt") or status_of(body).get("expiresAt"))
                self.expiry_lag.observe(max(0.0, (now - expires).total_seconds()))
        except ValueError:
            return  # no timestamp to measure from (a request seeded without one)

    def removal(self, key: RequestKey, ok: bool) -> None:
        """Count the outcome of an attempt to remove a request's bindings."""
        if ok:
            self.revocations_failing.discard(key)
        else:
            self.revocation_failures += 1
            self.revocations_failing.add(key)

    def webhook_latency(self, webhook: str) -> Distribution:
        """The distribution of `webhook`'s handling times (made at its first call)."""
        found = self.webhook_duration.get(webhook)
        if found is None:
            found = self.webhook_duration[webhook] = Distribution(LATENCY_BUCKETS)
        return found


def _could_start_at(body: Mapping[str, Any], status: Mapping[str, Any]) -> datetime:
    """When the request could have become Active: created, approved and its startTime reached,
    whichever came last (waiting for people or for the start is not the operator's latency)."""
    moments = [parse_time(metadata_of(body).get("creationTimestamp"))]
    start = spec_of(body).get("startTime")
    if start:
        moments.append(parse_time(start))
    conditions = [*(status.get("conditions") or []), *(status_of(body).get("conditions") or [])]
    approved = next((c for c in conditions if isinstance(c, Mapping) and c.get("type") == APPROVED), None)
    if approved is not None and approved.get("status") == "True" and approved.get("lastTransitionTime"):
        moments.append(parse_time(approved["lastTransitionTime"]))
    return max(moments)
