"""The public API end to end: runs through /v1 (the FASHN SDK's shapes) with webhooks to a local receiver.

Starts the whole stack (`make run`'s processes, smoke model, SQLite, embedded or local
Redis; loopback only), creates an account and an API key, then keeps `--concurrency` runs
in flight until `--runs` were sent: each worker sends a run (performance mode, data: URL
images, a webhook URL), polls GET /v1/status as the SDK's `subscribe` does, and waits for
its webhook before sending the next. Every webhook's Standard Webhooks signature is checked.

Prints runs completed, requests that failed (a 5xx, another unexpected answer, a dropped
connection), webhook deliveries (distinct ids per prediction; retries counted separately;
bad signatures), p50/p99 from run to webhook, and the same outside the model (minus weave's
pipeline seconds for that job, from its completion event), tracebacks in the stack's logs,
and how many requests a key limited to `--low-limit` got answered 429 when sent `--burst`
requests at once. Bounded: each run waits at most `--run-timeout`, the whole at most
`--timeout`. Last line: one JSON object.

    .venv/bin/python bench/api_v1.py --runs 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests
from PIL import Image
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import event_types as t
from shared.devstack import FUNCTIONS, DevStack, free_port
from shared.events import from_stream_fields
from shared.routing import route_for

STATUS_POLL_S = 1.0  # the SDK's subscribe polls about this often
ENDED = ("completed", "failed", "canceled")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def data_url(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 128), color).save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


class Receiver:
    """Records when each webhook-id arrived (every attempt), checks its signature, answers 204."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float, str]] = []  # (webhook-id, time, prediction status)
        self.bad_signatures = 0
        self.secret: str | None = None
        self.lock = threading.Lock()
        self.arrived: dict[str, threading.Event] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                at = time.perf_counter()
                body = json.loads(raw)
                try:
                    Webhook(receiver.secret or "").verify(raw, dict(self.headers.items()))
                    valid = True
                except WebhookVerificationError:
                    valid = False
                with receiver.lock:
                    receiver.arrivals.append((self.headers["webhook-id"], at, body["status"]))
                    receiver.bad_signatures += 0 if valid else 1
                    receiver.event(self.headers["webhook-id"].removeprefix("msg_")).set()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def event(self, prediction_id: str) -> threading.Event:
        """Set when the prediction's webhook arrived (call with the lock held)."""
        return self.arrived.setdefault(prediction_id, threading.Event())

    def wait(self, prediction_id: str, seconds: float) -> bool:
        with self.lock:
            event = self.event(prediction_id)
        return event.wait(seconds)


def account(base: str, limit: str | None = None) -> dict[str, str]:
    """A new account's API key (with this rate limit) and webhook signing secret."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    requests.post(
        f"{base}/user/signup", json={"user_name": "bench", "email": email, "password": "bench password"}, timeout=30
    ).raise_for_status()
    token = requests.post(f"{base}/user/login", json={"email": email, "password": "bench password"}, timeout=30).json()[
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    key = requests.post(f"{base}/api-keys", json={"rate_limit": limit} if limit else {}, headers=auth, timeout=30)
    secret = requests.get(f"{base}/webhook-settings", headers=auth, timeout=30).json()["secret"]
    return {"key": key.json()["key"], "secret": secret}


def pipeline_seconds(stack: DevStack) -> dict[str, float]:
    """weave's model time per job, from the completions on the results stream."""
    assert stack.settings is not None
    client = redis.Redis.from_url(stack.settings.redis_url or "", decode_responses=True)
    stream = stack.settings.redis_key_prefix + route_for(t.WEAVE_COMPLETED).stream
    found: dict[str, float] = {}
    for _, fields in client.xrange(stream):
        if fields.get("type") == t.WEAVE_COMPLETED:
            data = from_stream_fields(fields).get_data() or {}
            found[data["job_id"]] = float((data.get("metadata") or {}).get("pipeline_seconds") or 0.0)
    return found


def tracebacks(log_dir: Path) -> int:
    """Tracebacks the stack's processes logged (a 5xx or a crash leaves one)."""
    return sum(path.read_text(errors="replace").count("Traceback") for path in log_dir.glob("*") if path.is_file())


class Client:
    """The SDK's calls: run, then status until it ends (or the webhook came); records failures."""

    def __init__(self, base: str, key: str, receiver: Receiver, concurrency: int, run_timeout: float) -> None:
        self.base, self.receiver, self.run_timeout = base, receiver, run_timeout
        self.headers = {"Authorization": f"Bearer {key}"}
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=concurrency))
        self.sent: dict[str, float] = {}
        self.final_status: dict[str, str] = {}
        self.failures: list[str] = []  # a 5xx, another unexpected answer, or a dropped connection
        self.status_polls = 0
        self.lock = threading.Lock()

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        try:
            answer = self.session.request(method, f"{self.base}{path}", headers=self.headers, timeout=60, **kwargs)
        except requests.RequestException as exc:
            self._fail(f"{method} {path}: {exc!r}")
            return None
        if answer.status_code != 200:
            self._fail(f"{method} {path} answered {answer.status_code}: {answer.text[:300]}")
            return None
        return answer

    def _fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what[:400])

    def run(self, inputs: dict[str, Any]) -> None:
        started = time.perf_counter()
        answer = self._call(
            "POST",
            "/v1/run",
            params={"webhook_url": self.receiver.url},
            json={"model_name": "tryon-v1.6", "inputs": inputs},
        )
        if answer is None:
            return
        prediction = answer.json()["id"]
        with self.lock:
            self.sent[prediction] = started
        deadline = started + self.run_timeout
        status = ""
        while time.perf_counter() < deadline:
            if status not in ENDED:
                polled = self._call("GET", f"/v1/status/{prediction}")
                with self.lock:
                    self.status_polls += 1
                status = polled.json()["status"] if polled is not None else status
            if self.receiver.wait(prediction, STATUS_POLL_S) and status in ENDED:
                break
        with self.lock:
            self.final_status[prediction] = status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16, help="runs in flight at once")
    parser.add_argument("--low-limit", default="5 per minute", help="the limited key's rate limit")
    parser.add_argument("--burst", type=int, default=20, help="requests sent to the limited key")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds one run may take")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds all runs may take")
    args = parser.parse_args()

    receiver = Receiver()
    with tempfile.TemporaryDirectory(prefix="proteus-bench-api-") as tmp:
        env = dict(os.environ)
        env.update(
            PROTEUS_ENV="test",
            PROTEUS_DATA_DIR=f"{tmp}/var",
            MODELS_DIR=env.get("MODELS_DIR", "models"),
            WEAVE_MODEL="smoke",
            TAILOR_MODEL="smoke",
            LOG_LEVEL="WARNING",
            RETENTION_INTERVAL_S="0",
            REDIS_KEY_PREFIX=f"bench-{uuid.uuid4().hex[:8]}:",
            API_FETCH_ALLOWED_HOSTS="127.0.0.1",
            API_KEY_RATE_LIMIT="100000 per minute",
        )
        env.pop("DATABASE_URL", None)
        log_dir = Path(tmp) / "logs"
        stack = DevStack(
            env, gateway_port=free_port(), function_ports={n: free_port() for n in FUNCTIONS}, log_dir=log_dir
        )
        with stack:
            base = stack.gateway_url
            owner = account(base)
            receiver.secret = owner["secret"]
            client = Client(base, owner["key"], receiver, args.concurrency, args.run_timeout)
            inputs = {
                "model_image": data_url((200, 150, 120)),
                "garment_image": data_url((20, 40, 200)),
                "category": "tops",
                "mode": "performance",
            }
            deadline = time.monotonic() + args.timeout

            def one(_: int) -> None:
                if time.monotonic() < deadline:
                    client.run(inputs)

            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(one, range(args.runs)))
            wall_s = time.perf_counter() - started
            time.sleep(2.0)  # a retry of a webhook already seen would arrive now
            model = pipeline_seconds(stack)

            limited = {"Authorization": f"Bearer {account(base, args.low_limit)['key']}"}
            with ThreadPoolExecutor(args.burst) as pool:
                codes = list(
                    pool.map(
                        lambda _: (
                            requests.get(f"{base}/v1/webhooks/deliveries", headers=limited, timeout=30).status_code
                        ),
                        range(args.burst),
                    )
                )
            logged_tracebacks = tracebacks(log_dir)

    sent = client.sent
    first: dict[str, tuple[float, str]] = {}
    for msg_id, at, status in receiver.arrivals:
        first.setdefault(msg_id, (at, status))
    per_prediction = {msg_id.removeprefix("msg_"): v for msg_id, v in first.items()}
    ids_per_run: dict[str, int] = {}
    for msg_id in first:
        prediction = msg_id.removeprefix("msg_")
        ids_per_run[prediction] = ids_per_run.get(prediction, 0) + 1
    total_ms = [(at - sent[p]) * 1000 for p, (at, _) in per_prediction.items() if p in sent]
    outside_ms = [(at - sent[p] - model.get(p, 0.0)) * 1000 for p, (at, _) in per_prediction.items() if p in sent]
    completed = sum(1 for p in sent if client.final_status.get(p) == "completed" and per_prediction.get(p))
    figures = {
        "runs": args.runs,
        "concurrency": args.concurrency,
        "runs_completed": completed,
        "failed_requests": len(client.failures),
        "status_polls": client.status_polls,
        "webhook_ids": len(first),
        "webhook_ids_unknown": sum(1 for p in per_prediction if p not in sent),
        "webhook_ids_per_run_max": max(ids_per_run.values(), default=0),
        "webhook_retries": len(receiver.arrivals) - len(first),
        "webhook_bad_signatures": receiver.bad_signatures,
        "run_to_webhook_p50_ms": round(percentile(total_ms, 0.5), 1),
        "run_to_webhook_p99_ms": round(percentile(total_ms, 0.99), 1),
        "outside_model_p50_ms": round(percentile(outside_ms, 0.5), 1),
        "outside_model_p99_ms": round(percentile(outside_ms, 0.99), 1),
        "model_mean_ms": round(statistics.mean(model.values()) * 1000, 1) if model else None,
        "wall_s": round(wall_s, 1),
        "stack_log_tracebacks": logged_tracebacks,
        "low_limit": args.low_limit,
        "burst_requests": args.burst,
        "answered_429": codes.count(429),
    }
    print(f"{'figure':<28}{'value':>14}")
    for name, value in figures.items():
        print(f"{name:<28}{value!s:>14}")
    for failure in client.failures[:10]:
        print("failed:", failure, file=sys.stderr)
    print(json.dumps(figures))
    ok = (
        completed == args.runs
        and len(first) == args.runs
        and figures["webhook_ids_per_run_max"] == 1
        and not client.failures
        and not receiver.bad_signatures
        and not logged_tracebacks
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
