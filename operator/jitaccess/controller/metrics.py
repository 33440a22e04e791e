"""Prometheus metrics and health endpoints on --metrics-port (/metrics, /healthz).

Figures are read from the reconciler and the IAM writer when scraped, so the hot path pays
nothing for them: no counters to bump per request, no locks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from jitaccess.api.bodies import status_of
from jitaccess.api.reasons import Reason
from jitaccess.controller.reconciler import Reconciler
from jitaccess.policy.conditions import REVIEWED
from jitaccess.stats import Distribution

Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily


class ReconcilerCollector(Collector):
    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler

    def collect(self) -> Iterator[Family]:
        yield from self._requests()
        yield from self._work()
        yield from self._iam()
        yield from self._admission()
        yield from self._notices()

    def _requests(self) -> Iterator[Family]:
        reconciler = self.reconciler
        phases = Counter(
            str(status_of(body).get("phase") or "New") for body in reconciler.cache.requests.values()
        )
        requests = GaugeMetricFamily(
            "jitaccess_requests", "ActivationRequests known to the operator, by phase", labels=["phase"]
        )
        for phase, count in sorted(phases.items()):
            requests.add_metric([phase], count)
        yield requests
        unreviewed = Counter(
            str(condition.get("reason") or "")
            for body in reconciler.cache.requests.values()
            for condition in status_of(body).get("conditions") or ()
            if isinstance(condition, dict)
            and condition.get("type") == REVIEWED
            and condition.get("status") == "False"
        )
        family = GaugeMetricFamily(
            "jitaccess_unreviewed_break_glass",
            "Break-glass activations not yet reviewed: ReviewRequired, or ReviewOverdue (past reviewWithin)",
            labels=["reason"],
        )
        for reason in (Reason.REVIEW_REQUIRED, Reason.REVIEW_OVERDUE):
            family.add_metric([reason], unreviewed.get(reason, 0))
        yield family
        yield GaugeMetricFamily(
            "jitaccess_grants", "EligibleGrants known to the operator", value=len(reconciler.cache.grants)
        )
        yield GaugeMetricFamily(
            "jitaccess_active_activations",
            "Requests whose access is granted now",
            value=phases.get("Active", 0),
        )
        yield _histogram(
            "jitaccess_activation_latency_seconds",
            "From a request's creation to its Active status write",
            reconciler.metrics.activation_latency,
        )
        yield _histogram(
            "jitaccess_expiry_lag_seconds",
            "From a request's expiresAt to the status write that says its binding is gone",
            reconciler.metrics.expiry_lag,
        )

    def _work(self) -> Iterator[Family]:
        reconciler = self.reconciler
        yield GaugeMetricFamily(
            "jitaccess_leader",
            "1 on the replica that reconciles (holds the Lease, or runs without leader election), else 0",
            value=1 if reconciler.leading else 0,
        )
        yield GaugeMetricFamily(
            "jitaccess_work_busy",
            "Requests and grants due for reconciling now or being reconciled (0: all caught up)",
            value=reconciler.scheduler.busy,
        )
        yield GaugeMetricFamily(
            "jitaccess_work_scheduled",
            "Keys waiting for a future time (expiry, start, retry)",
            value=reconciler.scheduler.pending,
        )
        yield CounterMetricFamily(
            "jitaccess_reconciles", "Reconciles run", value=reconciler.metrics.reconciles
        )
        errors = CounterMetricFamily(
            "jitaccess_reconcile_errors",
            "Reconciles that raised (retried with backoff), by item kind: request, grant, orphan",
            labels=["kind"],
        )
        for kind, count in sorted(reconciler.metrics.reconcile_errors.items()):
            errors.add_metric([kind], count)
        yield errors

    def _iam(self) -> Iterator[Family]:
        reconciler = self.reconciler
        stats = reconciler.writer.stats
        calls = CounterMetricFamily("jitaccess_iam_calls", "IAM policy calls made", labels=["method"])
        calls.add_metric(["getIamPolicy"], stats.get("get", 0))
        calls.add_metric(["setIamPolicy"], stats.get("set", 0))
        yield calls
        yield CounterMetricFamily(
            "jitaccess_iam_conflicts",
            "setIamPolicy refused for a stale etag (409)",
            value=stats.get("conflicts", 0),
        )
        yield CounterMetricFamily(
            "jitaccess_iam_quota_exceeded", "IAM calls refused for quota (429)", value=stats.get("quota", 0)
        )
        outcomes = CounterMetricFamily(
            "jitaccess_iam_call_outcomes",
            "IAM policy calls by method and outcome (ok, conflict, quota, unavailable, refused)",
            labels=["method", "outcome"],
        )
        for (method, outcome), count in sorted(reconciler.writer.outcomes.items()):
            outcomes.add_metric([method, outcome], count)
        yield outcomes
        yield _histograms(
            "jitaccess_iam_call_duration_seconds",
            "Seconds an IAM policy call took (getIamPolicy, setIamPolicy), whatever its outcome",
            "method",
            reconciler.writer.durations,
        )
        sizes = reconciler.writer.batch_sizes
        if sizes is not None:
            yield _histogram("jitaccess_iam_batch_size", "Changes written in one read-modify-write", sizes)
        yield CounterMetricFamily(
            "jitaccess_revocation_failures",
            "Attempts to remove a request's bindings from IAM that failed (refused or unavailable)",
            value=reconciler.metrics.revocation_failures,
        )
        yield GaugeMetricFamily(
            "jitaccess_revocations_failing",
            "Requests whose access should have ended but IAM has not let the operator remove yet",
            value=len(reconciler.metrics.revocations_failing),
        )

    def _admission(self) -> Iterator[Family]:
        reconciler = self.reconciler
        decisions = CounterMetricFamily(
            "jitaccess_webhook_decisions", "Admission decisions", labels=["webhook", "decision"]
        )
        for (webhook, decision), count in sorted(reconciler.metrics.webhook_decisions.items()):
            decisions.add_metric([webhook, decision], count)
        yield decisions
        yield _histograms(
            "jitaccess_webhook_duration_seconds",
            "Seconds an admission webhook's handler took to answer (allowed, denied or failed)",
            "webhook",
            reconciler.metrics.webhook_duration,
        )

    def _notices(self) -> Iterator[Family]:
        reconciler = self.reconciler
        sent = CounterMetricFamily(
            "jitaccess_notifications",
            "Notices by channel, kind and outcome (sent, failed, in-doubt: being sent when a leader "
            "stopped, never resent; nobody: no channel had anyone to tell)",
            labels=["channel", "kind", "outcome"],
        )
        if reconciler.outbox is not None:
            for (channel, kind, outcome), count in sorted(reconciler.outbox.outcomes.items()):
                sent.add_metric([channel, kind, outcome], count)
        yield sent
        clicks = CounterMetricFamily(
            "jitaccess_slack_actions",
            "Slack button clicks by outcome (recorded, refused by admission, forged, replayed, "
            "other-workspace, unknown-person, ignored)",
            labels=["outcome"],
        )
        if reconciler.slack_actions is not None:
            for outcome, count in sorted(reconciler.slack_actions.outcomes.items()):
                clicks.add_metric([outcome], count)
        yield clicks


def _histogram(name: str, documentation: str, distribution: Distribution) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, documentation, buckets=distribution.cumulative(), sum_value=distribution.total
    )


def _histograms(
    name: str, documentation: str, label: str, distributions: Mapping[str, Distribution]
) -> HistogramMetricFamily:
    """One histogram family, a series per value of `label`."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, distribution in sorted(distributions.items()):
        family.add_metric([value], distribution.cumulative(), sum_value=distribution.total)
    return family


def metrics_app(reconciler: Reconciler) -> web.Application:
    registry = CollectorRegistry()
    registry.register(ReconcilerCollector(reconciler))

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        problem = reconciler.health.problem()
        return web.Response(text="ok\n") if problem is None else web.Response(status=503, text=problem + "\n")

    async def readyz(_: web.Request) -> web.Response:
        problem = await reconciler.health.unready()
        return web.Response(text="ok\n") if problem is None else web.Response(status=503, text=problem + "\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_metrics(reconciler: Reconciler, port: int, host: str = "0.0.0.0") -> web.AppRunner:
    runner = web.AppRunner(metrics_app(reconciler), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
