"""The public API end to end: runs through /v1 (the FASHN SDK's shapes) with webhooks to a local receiver.

Starts the whole stack (`make run`'s processes, smoke model, SQLite, embedded or local
Redis), creates an account and an API key, then sends `--runs` runs (performance mode,
data: URL images, a webhook URL each) and waits for every webhook. Prints runs completed,
webhook deliveries (distinct ids per prediction; retries counted separately), p50/p99 from
run to webhook, and the same outside the model (minus weave's pipeline seconds for that
job, from its completion event), and how many requests a key limited to `--low-limit`
got answered 429 when sent `--burst` requests at once. Last line: one JSON object.

    .venv/bin/python bench/api_v1.py --runs 200
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import event_types as t
from shared.devstack import FUNCTIONS, DevStack, free_port
from shared.events import from_stream_fields
from shared.routing import route_for


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def data_url(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 128), color).save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


class Receiver:
    """Records when each webhook-id arrived (every attempt) and answers 204."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float, str]] = []  # (webhook-id, time, prediction status)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.arrivals.append((self.headers["webhook-id"], time.perf_counter(), body["status"]))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def account(base: str, limit: str | None = None) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    requests.post(
        f"{base}/user/signup", json={"user_name": "bench", "email": email, "password": "bench password"}, timeout=30
    ).raise_for_status()
    token = requests.post(f"{base}/user/login", json={"email": email, "password": "bench password"}, timeout=30).json()[
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    key = requests.post(f"{base}/api-keys", json={"rate_limit": limit} if limit else {}, headers=auth, timeout=30)
    return {"key": key.json()["key"]}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1, help="runs sent at once")
    parser.add_argument("--low-limit", default="5 per minute", help="the limited key's rate limit")
    parser.add_argument("--burst", type=int, default=20, help="requests sent to the limited key")
    parser.add_argument("--timeout", type=float, default=1800.0)
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
        stack = DevStack(
            env,
            gateway_port=free_port(),
            function_ports={n: free_port() for n in FUNCTIONS},
            log_dir=Path(tmp) / "logs",
        )
        with stack:
            base = stack.gateway_url
            headers = {"Authorization": f"Bearer {account(base)['key']}"}
            inputs = {
                "model_image": data_url((200, 150, 120)),
                "garment_image": data_url((20, 40, 200)),
                "category": "tops",
                "mode": "performance",
            }
            sent: dict[str, float] = {}

            def run(_: int) -> None:
                started = time.perf_counter()
                answer = requests.post(
                    f"{base}/v1/run",
                    params={"webhook_url": receiver.url},
                    headers=headers,
                    json={"model_name": "tryon-v1.6", "inputs": inputs},
                    timeout=120,
                )
                if answer.status_code != 200:
                    raise RuntimeError(f"POST /v1/run answered {answer.status_code}: {answer.text[:300]}")
                sent[answer.json()["id"]] = started

            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(run, range(args.runs)))
            deadline = time.monotonic() + args.timeout
            while len({a[0] for a in receiver.arrivals}) < len(sent) and time.monotonic() < deadline:
                time.sleep(0.2)
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

    first: dict[str, tuple[float, str]] = {}
    for msg_id, at, status in receiver.arrivals:
        first.setdefault(msg_id, (at, status))
    per_prediction = {msg_id.removeprefix("msg_"): v for msg_id, v in first.items()}
    total_ms = [(at - sent[p]) * 1000 for p, (at, _) in per_prediction.items() if p in sent]
    outside_ms = [(at - sent[p] - model.get(p, 0.0)) * 1000 for p, (at, _) in per_prediction.items() if p in sent]
    completed = sum(1 for _, status in per_prediction.values() if status == "completed")
    figures = {
        "runs": args.runs,
        "runs_completed": completed,
        "webhook_ids": len(first),
        "webhook_ids_per_run_max": 1 if len(first) == len(per_prediction) else None,
        "webhook_retries": len(receiver.arrivals) - len(first),
        "run_to_webhook_p50_ms": round(percentile(total_ms, 0.5), 1),
        "run_to_webhook_p99_ms": round(percentile(total_ms, 0.99), 1),
        "outside_model_p50_ms": round(percentile(outside_ms, 0.5), 1),
        "outside_model_p99_ms": round(percentile(outside_ms, 0.99), 1),
        "model_mean_ms": round(statistics.mean(model.values()) * 1000, 1) if model else None,
        "low_limit": args.low_limit,
        "burst_requests": args.burst,
        "answered_429": codes.count(429),
    }
    print(f"{'figure':<28}{'value':>14}")
    for name, value in figures.items():
        print(f"{name:<28}{value!s:>14}")
    print(json.dumps(figures))
    return 0 if completed == args.runs and len(first) == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
