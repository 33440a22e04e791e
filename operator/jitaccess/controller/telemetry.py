"""What the operator counts as it works, for /metrics (controller/metrics.py exposes it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from jitaccess.controller.cache import RequestKey
from jitaccess.stats import LATENCY_BUCKETS, Distribution


@dataclass
class Metrics:
    reconciles: int = 0
    activation_latency: Distribution = field(default_factory=lambda: Distribution(LATENCY_BUCKETS))
    expiry_lag: Distribution = field(default_factory=lambda: Distribution(LATENCY_BUCKETS))
    webhook_decisions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (webhook, allowed|denied)
    revocation_failures: int = 0  # removals from IAM that failed, each attempt
    revocations_failing: set[RequestKey] = field(default_factory=set)  # requests whose removal is retried

    def removal(self, key: RequestKey, ok: bool) -> None:
        """Count the outcome of an attempt to remove a request's bindings."""
        if ok:
            self.revocations_failing.discard(key)
        else:
            self.revocation_failures += 1
            self.revocations_failing.add(key)
