"""The routing table (shared/routing.py), the runner's configuration and the manifests
agree: stream names, consumer groups, and where each stream's events are delivered.

`routing_problems` collects every disagreement; the tests assert there are none, and
feed it a deliberately wrong table to prove it notices."""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared import routing
from shared.routing import ROUTES, SYNCHRONOUS_FUNCTIONS, Route, prefixed
from tests.knative import support

RUNNER = ["python", "-m", "shared.streams.runner"]


def _cluster_url(name: str) -> str:
    return f"http://{name}.{support.NAMESPACE}.svc.cluster.local/"


def _only(command: list[str]) -> list[str]:
    return command[command.index("--only") + 1].split(",") if "--only" in command else []


def routing_problems(routes: tuple[Route, ...], docs: list[tuple[Any, dict[str, Any]]]) -> list[str]:
    problems: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    config = next(d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == "proteus-config")["data"]
    secrets = next(d for d in by_kind["Secret"] if d["metadata"]["name"] == "proteus-secrets")["stringData"]
    prefix = config.get("REDIS_KEY_PREFIX", "")
    ksvcs = {d["metadata"]["name"] for d in by_kind["Service"] if d["apiVersion"] == "serving.knative.dev/v1"}
    settings = support.settings_from({**config, **secrets})
    redis_host = urlsplit(secrets["REDIS_URL"]).hostname
    redis_db = urlsplit(secrets["REDIS_URL"]).path.lstrip("/") or "0"

    # 1. Each consumer is a Knative Service, and the runner's URL for it (Settings read
    #    from the ConfigMap) is that Service's cluster-local address.
    for route in routes:
        service = support.ksvc_name(route.consumer)
        if service not in ksvcs:
            problems.append(f"{route.stream}: no Knative Service {service} for consumer {route.consumer}")
        try:
            url = settings.function_url(route.consumer)
        except KeyError:
            problems.append(f"{route.consumer}: not a function of shared/routing.py's FUNCTION_PORTS")
            continue
        if url != _cluster_url(service):
            problems.append(f"{route.consumer.upper()}_URL is {url}, expected {_cluster_url(service)}")

    # 2. Runner Deployments: exactly one push-mode runner per route, fed by --only.
    runners = [d for d in by_kind["Deployment"] if d["metadata"]["name"].startswith("runner-")]
    fed: dict[str, str] = {}
    for deployment in runners:
        name = deployment["metadata"]["name"]
        command = support.pod_spec(deployment)["containers"][0]["command"]
        if command[:3] != RUNNER or "--pull" in command:
            problems.append(f"{name}: not the push-mode runner: {shlex.join(command)}")
        consumers = _only(command)
        if len(consumers) != 1:
            problems.append(f"{name}: expected --only <one function>, got {shlex.join(command)}")
            continue
        consumer = consumers[0]
        fed[consumer] = name
        route = next((r for r in routes if r.consumer == consumer), None)
        if route is None:
            problems.append(f"{name}: --only {consumer} is not a route's consumer")
            continue
        if name != f"runner-{support.ksvc_name(consumer)}":
            problems.append(f"{name}: expected the name runner-{support.ksvc_name(consumer)}")
        notes = deployment["metadata"].get("annotations", {})
        if notes.get("proteus.dev/stream") != prefixed(route.stream, prefix):
            problems.append(
                f"{name}: annotation proteus.dev/stream {notes.get('proteus.dev/stream')} != {route.stream}"
            )
        if notes.get("proteus.dev/consumer-group") != route.group:
            problems.append(f"{name}: annotation proteus.dev/consumer-group != {route.group}")
    for route in routes:
        if route.consumer not in fed:
            problems.append(f"{route.stream}: no runner Deployment feeds {route.consumer}")

    # 3. RedisStreamSources: one per route, same stream and group, sink = the consumer.
    sources = by_kind.get("RedisStreamSource", [])
    seen = set()
    for source in sources:
        spec = source["spec"]
        route = next((r for r in routes if prefixed(r.stream, prefix) == spec["stream"]), None)
        name = source["metadata"]["name"]
        if route is None:
            problems.append(f"{name}: stream {spec['stream']} is not in the routing table")
            continue
        seen.add(route.stream)
        if spec.get("group") != route.group:
            problems.append(f"{name}: group {spec.get('group')} != {route.group}")
        sink = spec["sink"].get("ref", {})
        expected = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "name": support.ksvc_name(route.consumer),
        }
        if sink != expected:
            problems.append(f"{name}: sink {sink} != {expected}")
        if urlsplit(spec["address"]).hostname != redis_host:
            problems.append(f"{name}: address {spec['address']} is not the Redis of REDIS_URL")
    for route in routes:
        if route.stream not in seen:
            problems.append(f"{route.stream}: no RedisStreamSource")
    if len(sources) != len(routes):
        problems.append(f"{len(sources)} RedisStreamSources for {len(routes)} routes")

    # 4. The streams-init Job creates exactly the routes' groups.
    job = next(d for d in by_kind["Job"] if d["metadata"]["name"] == "proteus-streams-init")
    env = {e["name"]: e for e in support.pod_spec(job)["containers"][0]["env"]}
    pairs = {tuple(p.split("=", 1)) for p in env["STREAM_GROUPS"]["value"].split()}
    expected_pairs = {(prefixed(r.stream, prefix), r.group) for r in routes}
    if pairs != expected_pairs:
        problems.append(f"streams-init STREAM_GROUPS {sorted(pairs)} != {sorted(expected_pairs)}")

    # 5. KEDA: the weave worker pulls the weave route; the triggers watch its stream/group.
    weave = next((r for r in routes if r.consumer == "weave"), None)
    if weave is None:
        problems.append("no route is consumed by weave")
    else:
        worker = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "weave-worker")
        command = support.pod_spec(worker)["containers"][0]["command"]
        if command[:3] != RUNNER or _only(command) != ["weave"] or command[command.index("--pull") + 1] != "weave":
            problems.append(f"weave-worker: expected the runner with --only weave --pull weave, got {command}")
        scaled = next(d for d in by_kind["ScaledObject"] if d["metadata"]["name"] == "weave-worker")
        if scaled["spec"]["scaleTargetRef"]["name"] != "weave-worker":
            problems.append("ScaledObject does not target weave-worker")
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            if trigger["type"] != "redis-streams":
                problems.append(f"trigger {trigger.get('name')}: type {trigger['type']}")
            if meta["stream"] != prefixed(weave.stream, prefix) or meta["consumerGroup"] != weave.group:
                problems.append(
                    f"trigger {trigger.get('name')}: {meta['stream']}/{meta['consumerGroup']} != weave route"
                )
            if meta["address"].split(":")[0] != redis_host or meta.get("databaseIndex", "0") != redis_db:
                problems.append(f"trigger {trigger.get('name')}: not the Redis database of REDIS_URL")
    return problems


def test_routing_table_runner_and_manifests_agree() -> None:
    assert routing_problems(ROUTES, support.all_documents()) == []


@pytest.mark.parametrize(
    "change",
    [
        {"stream": "proteus:weave-v2"},
        {"consumer": "weave2"},
        {"consumer": "tailor"},
    ],
    ids=["renamed stream", "unknown consumer", "consumer moved"],
)
def test_a_changed_route_is_noticed(change: dict[str, str]) -> None:
    routes = tuple(dataclasses.replace(r, **change) if r.consumer == "weave" else r for r in ROUTES)
    assert routing_problems(routes, support.all_documents())


def test_an_extra_route_is_noticed() -> None:
    routes = ROUTES + (Route("proteus:extra", "notify", ("dev.proteus.extra",)),)
    assert routing_problems(routes, support.all_documents())


def test_a_manifest_pointing_elsewhere_is_noticed() -> None:
    docs = support.all_documents()
    for _, doc in docs:
        if doc["kind"] == "RedisStreamSource" and doc["spec"]["group"] == "tailor":
            doc["spec"]["sink"]["ref"]["name"] = "notify"
        if doc["kind"] == "ConfigMap":
            doc["data"]["ENQUEUE_URL"] = "http://enqueue.default.svc.cluster.local/"
    problems = routing_problems(ROUTES, docs)
    assert any("stream-tailor: sink" in p for p in problems)
    assert any("ENQUEUE_URL" in p for p in problems)


def test_synchronous_functions_have_a_service_but_no_event_source() -> None:
    docs = support.all_documents()
    fed = {
        c
        for _, d in docs
        if d["kind"] == "Deployment"
        for c in _only(support.pod_spec(d)["containers"][0].get("command", []))
    }
    sinks = {d["spec"]["sink"]["ref"]["name"] for _, d in docs if d["kind"] == "RedisStreamSource"}
    for function in SYNCHRONOUS_FUNCTIONS:
        assert support.ksvc_name(function) in support.knative_services()
        assert function not in fed and support.ksvc_name(function) not in sinks
    settings = support.settings_from({**support.configmap(), **support.secret_template()})
    assert settings.function_url("upload_signing") == _cluster_url("upload-signing")


def test_every_function_has_a_service_an_image_and_a_url() -> None:
    config = support.configmap()
    for function in routing.FUNCTION_PORTS:
        assert support.ksvc_name(function) in support.knative_services()
        assert f"proteus-{support.ksvc_name(function)}" in support.images()
        assert f"{function.upper()}_URL" in config
