"""One try-on through the whole system (real processes, `make run`'s DevStack) with tracing on:

- its spans, exported over OTLP/HTTP to a receiver in this test that decodes the real
  protobuf, form one trace across the gateway, the runner, enqueue, tailor (category auto),
  weave (with its decoding, denoising and VAE spans) and notify;
- every process' /metrics moves the counters it should (functions under gunicorn with
  several workers: multiprocess mode);
- the logs hold one JSON line per event handled (job id, event id, trace id, outcome) and
  never a password, a token, a signed URL or image bytes.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import stack_environ, start_stack
from tests.test_system import jpeg, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis]
PASSWORD = "correct horse battery staple"


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.spans: list[dict[str, str]] = []
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                assert self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
                receiver.add(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            self.requests += 1
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "service": attributes.get("service.name", ""),
                                "namespace": attributes.get("service.namespace", ""),
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                            }
                        )

    def trace(self, trace_id: str) -> list[dict[str, str]]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    made = OtlpReceiver()
    yield made
    made.close()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, smoke_models_dir: Path, redis_server_url: str, receiver: OtlpReceiver
) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("observability")
    env = stack_environ(
        folder / "var",
        smoke_models_dir,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"test-{uuid.uuid4().hex[:10]}:",
        LOG_LEVEL="INFO",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        WEB_CONCURRENCY="2",  # every server with two workers: metrics must add both up
    )
    running = start_stack(env, folder / "logs")
    running.log_folder = folder / "logs"

    def runner_serves() -> bool:
        try:
            return requests.get(running.runner_metrics_url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for(runner_serves, timeout=60)
    yield running
    running.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def metrics_pages(stack: Any) -> dict[str, str]:
    pages = {name: stack.function_url(name) + "metrics" for name in stack.function_ports}
    return pages | {"gateway": stack.gateway_url + "/metrics", "runner": stack.runner_metrics_url}


def one_tryon(stack: Any) -> dict[str, Any]:
    """Sign up, upload two photos, ask for a try-on (category auto: tailor first), wait for it."""
    g = stack.gateway_url
    http = requests.Session()
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    assert (
        http.post(f"{g}/user/signup", json={"user_name": "Ops", "email": email, "password": PASSWORD}).status_code
        == 201
    )
    token = http.post(f"{g}/user/login", json={"email": email, "password": PASSWORD}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    keys, urls = [], []
    for name, color in (("me.jpg", (200, 150, 120)), ("shirt.jpg", (20, 40, 200))):
        signed = http.post(
            f"{g}/images/presignedUploadUrl", headers=auth, json={"fileName": name, "fileType": "image/jpeg"}
        ).json()
        assert http.put(signed["url"], data=jpeg(color), headers=signed["headers"]).status_code in (200, 201, 204)
        keys.append(signed["key"])
        urls.append(signed["url"])
    vton = http.post(f"{g}/vton", headers=auth, json={"user_snap": keys[0], "uncleaned_outfit": keys[1]}).json()
    download = http.post(f"{g}/images/presignedDownloadUrl", headers=auth, json={"key": keys[0]}).json()["url"]
    started = http.post(
        f"{g}/jobs/weaver",
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        json={
            "vton_id": vton["id"],
            "user_snap_s3": keys[0],
            "uncleaned_outfit_s3": keys[1],
            "category": "auto",
            "steps": 2,
            "seed": 7,
        },
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    job = wait_for(
        lambda: (j := http.get(f"{g}/jobs/{job_id}", headers=auth).json())["status"] in ("succeeded", "failed") and j,
        timeout=120,
    )
    assert job["status"] == "succeeded", job
    return {"job_id": job_id, "token": token, "signed_urls": [*urls, download], "email": email}


@pytest.fixture(scope="module")
def tryon(stack: Any) -> dict[str, Any]:
    pages = metrics_pages(stack)
    before = {name: scrape(url) for name, url in pages.items()}
    done = one_tryon(stack)
    time.sleep(0.5)  # notify's last event is acknowledged after its answer
    done["before"], done["after"] = before, {name: scrape(url) for name, url in pages.items()}
    return done


def test_one_tryon_is_one_trace_across_every_process(receiver: OtlpReceiver, tryon: dict[str, Any]) -> None:
    wanted = {
        "proteus-gateway",
        "proteus-runner",
        "proteus-enqueue",
        "proteus-tailor",
        "proteus-weave",
        "proteus-notify",
    }

    def whole_trace() -> list[dict[str, str]] | None:
        with receiver.lock:
            roots = [s for s in receiver.spans if s["name"] == "POST /jobs/weaver" and not s["parent"]]
        for root in roots:
            spans = receiver.trace(root["trace_id"])
            if wanted <= {s["service"] for s in spans} and {"weave vae decode"} <= {s["name"] for s in spans}:
                return spans
        return None

    spans = wait_for(whole_trace, timeout=30)
    names = {s["name"] for s in spans}
    for stage in (
        "weave decode images",
        "weave render batch",
        "weave vae encode",
        "weave denoise",
        "weave vae decode",
        "enqueue dev.proteus.tryon.requested",
        "tailor dev.proteus.tailor.requested",
        "weave dev.proteus.weave.requested",
        "notify dev.proteus.weave.completed",
    ):
        assert stage in names, (stage, sorted(names))
    ids = {s["span_id"] for s in spans}
    assert [s for s in spans if s["parent"] and s["parent"] not in ids] == []  # one connected tree
    assert len([s for s in spans if not s["parent"]]) == 1
    assert {s["namespace"] for s in spans} == {"proteus"}


def test_one_tryon_moves_the_counters(stack: Any, tryon: dict[str, Any]) -> None:
    before, after = tryon["before"], tryon["after"]

    def moved(process: str, name: str, **labels: str) -> float:
        return value(after[process], name, **labels) - value(before[process], name, **labels)

    for function, event_type in (
        ("enqueue", "dev.proteus.tryon.requested"),
        ("tailor", "dev.proteus.tailor.requested"),
        ("weave", "dev.proteus.weave.requested"),
        ("notify", "dev.proteus.weave.completed"),
    ):
        assert moved(function, "proteus_events_handled_total", function=function, type=event_type, outcome="ok") >= 1
        assert moved(function, "proteus_event_handle_duration_seconds_count", function=function, type=event_type) >= 1
    assert moved("notify", "proteus_job_duration_seconds_count", job_type="try_on", outcome="ok") == 1
    assert moved("weave", "proteus_weave_batch_size_count") >= 1
    assert moved("weave", "proteus_weave_denoising_steps_total") >= 2
    assert value(after["weave"], "proteus_model_load_seconds", function="weave") > 0
    assert moved("tailor", "proteus_tailor_cache_requests_total", result="miss") >= 1
    assert moved("gateway", "proteus_http_requests_total", route="/jobs/weaver", method="POST", status="202") == 1
    assert moved("gateway", "proteus_http_requests_total", route="/jobs/<job_id>", method="GET", status="200") >= 1
    for consumer in ("enqueue", "tailor", "weave", "notify"):
        assert moved("runner", "proteus_runner_deliveries_total", consumer=consumer, outcome="ok") >= 1
    assert value(after["runner"], "proteus_stream_metrics_up") == 1
    assert value(after["runner"], "proteus_stream_lag_entries", stream="proteus:weave", group="weave") == 0
    assert ("proteus_stream_dead_letters", (("stream", "proteus:results"),)) in after["runner"]
    for samples in after.values():  # no unbounded label values: no ids, keys or paths
        labels = " ".join(v for _, pairs in samples for _, v in pairs)
        assert tryon["job_id"] not in labels and "uploads/" not in labels


def test_logs_have_one_line_per_event_and_no_secrets(stack: Any, tryon: dict[str, Any]) -> None:
    time.sleep(0.5)
    logs = {path.stem: path.read_text(errors="replace") for path in Path(stack.log_folder).glob("*.log")}
    handled = [
        json.loads(line)
        for name in ("enqueue", "tailor", "weave", "notify")
        for line in logs[name].splitlines()
        if line.startswith("{") and '"event handled"' in line
    ]
    mine = [line for line in handled if line["job_id"] == tryon["job_id"]]
    assert {line["function"] for line in mine} == {"enqueue", "tailor", "weave", "notify"}
    assert all(
        line["event_id"] and re.fullmatch(r"[0-9a-f]{32}", line["trace_id"] or "") and line["outcome"] == "ok"
        for line in mine
    ), mine
    assert len({line["trace_id"] for line in mine}) == 1
    everything = "\n".join(logs.values())
    secrets = [
        PASSWORD,
        tryon["token"],
        *tryon["signed_urls"],
        *(url.split("?", 1)[1] for url in tryon["signed_urls"] if "?" in url),
    ]
    assert [s for s in secrets if s in everything] == []
    assert not re.search(r"[?&](signature|X-Amz-Signature|sig)=", everything, re.IGNORECASE)
    assert "\ufffd\ufffd\ufffd" not in everything and "/9j/" not in everything  # JPEG bytes, raw or base64
    assert "iVBORw0KGgo" not in everything  # PNG as base64


def test_a_websocket_handshake_is_a_gateway_span_and_counted_as_101(
    stack: Any, receiver: OtlpReceiver, tryon: dict[str, Any]
) -> None:
    """Handshakes are served in front of Flask (gateway/ws_handshake.py), still traced and counted."""
    from tests.gateway.helpers import WSClient  # simple-websocket's client, its handshake race fixed

    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    before = value(
        scrape(stack.gateway_url + "/metrics"), "proteus_http_requests_total", route="/ws", method="GET", status="101"
    )
    ws = WSClient.connect(
        stack.gateway_url.replace("http://", "ws://") + "/ws?token=" + tryon["token"],
        headers={"traceparent": f"00-{trace_id}-{parent}-01"},
    )
    try:
        assert json.loads(ws.receive(timeout=10))["event"] == "ready"
    finally:
        ws.close()
    spans = wait_for(lambda: receiver.trace(trace_id), timeout=15)
    assert [(s["service"], s["name"], s["parent"]) for s in spans] == [("proteus-gateway", "GET /ws", parent)]
    after = value(
        scrape(stack.gateway_url + "/metrics"), "proteus_http_requests_total", route="/ws", method="GET", status="101"
    )
    assert after == before + 1
