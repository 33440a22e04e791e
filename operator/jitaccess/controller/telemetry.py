"""What the operator counts as it works, for /metrics (controller/metrics.py exposes it).

Plain counters and distributions bumped on the event loop, read by the scrape on the same loop:
no locks, nothing kept per request beyond the set of requests whose removal is failing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from jitaccess.controller.cache import RequestKey
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
