"""knative/monitoring/: a PodMonitor for every service and runner, the alerts the issue asks
for, and a Grafana dashboard; every metric they name exists in shared/observability/.
(Schema validation of the PodMonitors and the PrometheusRule: test_manifests.py.)"""

from __future__ import annotations

import json
import re
from importlib import import_module
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.knative import support

MONITORING = support.KNATIVE / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
STREAM_METRICS = {
    "proteus_stream_length",
    "proteus_stream_pending_entries",
    "proteus_stream_lag_entries",
    "proteus_stream_dead_letters",
    "proteus_stream_metrics_up",
}
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def defined_metrics() -> set[str]:
    import_module("shared.observability.metrics")  # defining the metrics registers them
    names = set(STREAM_METRICS)
    for collector in list(REGISTRY._collector_to_names):
        names.update(REGISTRY._collector_to_names[collector])
    return {n for n in names if n.startswith("proteus_")}


def named_metrics(text: str) -> set[str]:
    found = set()
    for name in re.findall(r"\bproteus_[a-z0-9_]+", text):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in defined_metrics():
                name = name[: -len(suffix)]
        found.add(name)
    return found


def test_every_knative_service_has_a_pod_monitor_on_its_user_port() -> None:
    monitors = {
        doc["spec"]["selector"].get("matchLabels", {}).get("serving.knative.dev/service"): doc
        for _, doc in support.docs_of("PodMonitor", under="monitoring")
    }
    for name in support.knative_services():
        assert name in monitors, f"no PodMonitor for {name}"
        endpoint = monitors[name]["spec"]["podMetricsEndpoints"][0]
        assert (endpoint["port"], endpoint["path"]) == ("user-port", "/metrics")


def test_every_runner_is_scraped_on_its_metrics_port() -> None:
    monitor = support.one("PodMonitor", "proteus-runners")
    selected = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    port = int(support.configmap()["METRICS_PORT"])
    runners = [
        doc
        for _, doc in support.docs_of("Deployment")
        if "shared.streams.runner" in " ".join(support.containers(doc)[0].get("command", []))
    ]
    assert len(runners) >= 5
    for doc in runners:
        assert doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] in selected
        ports = {p["name"]: p["containerPort"] for p in support.containers(doc)[0].get("ports", [])}
        assert ports.get("metrics") == port, doc["metadata"]["name"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_the_alerts_cover_what_an_operator_needs() -> None:
    rules = support.one("PrometheusRule", "proteus-alerts")
    alerts = {r["alert"]: r for g in rules["spec"]["groups"] for r in g["rules"]}
    for wanted in (
        "ProteusDeadLetters",
        "ProteusStreamLagGrowing",
        "ProteusWeaveNotReady",
        "ProteusFunctionErrorRate",
        "ProteusGatewayErrorRate",
        "ProteusTryOnP99OverTarget",
    ):
        assert wanted in alerts
        assert alerts[wanted]["labels"]["severity"] in ("warning", "critical")
        assert alerts[wanted]["annotations"]["summary"]
    assert "for" in alerts["ProteusStreamLagGrowing"]  # growing for N minutes, not a blip


@pytest.mark.parametrize("path", [MONITORING / "alerts.yaml", DASHBOARD], ids=lambda p: p.name)
def test_every_metric_named_exists(path: Path) -> None:
    named = named_metrics(path.read_text())
    assert named, path
    assert named <= defined_metrics(), sorted(named - defined_metrics())


def test_the_dashboard_shows_lag_throughput_latency_gpu_and_failures() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("queue lag", "throughput", "latency", "gpu memory", "failures by reason", "dead letters"):
        assert topic in titles, topic
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(
            t["expr"] and t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]
        )
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_metric_names_follow_prometheus_conventions() -> None:
    from prometheus_client import Counter, Histogram

    for collector, names in REGISTRY._collector_to_names.items():
        base = getattr(collector, "_name", "")
        if not base.startswith("proteus_"):
            continue
        assert re.fullmatch(r"proteus_[a-z0-9_]+", base)
        if isinstance(collector, Counter):
            assert f"{base}_total" in names
        if isinstance(collector, Histogram) and "duration" in base:
            assert base.endswith("_seconds")
        assert "user" not in getattr(collector, "_labelnames", ()) and "job_id" not in getattr(
            collector, "_labelnames", ()
        )
