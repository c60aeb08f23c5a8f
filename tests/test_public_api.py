"""The public API end to end, as real processes (`make run`'s devstack, smoke models):
the official `fashn` SDK runs predictions.subscribe(...) to completion unmodified, webhooks
arrive signed (verified by the `standardwebhooks` package) once per prediction, every sample
is stored with its provenance, and a running prediction is canceled between steps.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from PIL import Image

pytestmark = [pytest.mark.slow]


def jpeg(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 128), color).save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


class Receiver:
    """A webhook receiver: answers 503 to the first `fail_first` calls, then 204; keeps every call."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 503 if len(receiver.calls) < receiver.fail_first else 204
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def wait(self, count: int, timeout: float = 120) -> list[tuple[dict[str, str], bytes, int]]:
        deadline = time.monotonic() + timeout
        while len([c for c in self.calls if c[2] == 204]) < count:
            assert time.monotonic() < deadline, f"{len(self.calls)} webhook calls so far: {self.calls}"
            time.sleep(0.1)
        return self.calls


@pytest.fixture(scope="module")
def account(devstack: Any) -> dict[str, str]:
    """A signed-up person of the running stack with an API key and their webhook secret."""
    base = devstack.gateway_url
    email = f"shop-{uuid.uuid4().hex[:8]}@example.com"
    signup = requests.post(
        f"{base}/user/signup", json={"user_name": "shop", "email": email, "password": "a good password"}, timeout=30
    )
    assert signup.status_code == 201, signup.text
    token = requests.post(
        f"{base}/user/login", json={"email": email, "password": "a good password"}, timeout=30
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    key = requests.post(f"{base}/api-keys", json={"name": "tests"}, headers=auth, timeout=30).json()["key"]
    secret = requests.get(f"{base}/webhook-settings", headers=auth, timeout=30).json()["secret"]
    return {"base": base, "key": key, "secret": secret, "token": token}


@pytest.fixture
def sdk_env(account: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FASHN_BASE_URL", account["base"])
    monkeypatch.setenv("FASHN_API_KEY", account["key"])
    yield


def test_the_fashn_sdk_subscribes_to_completion_with_signed_webhooks(account: dict[str, str], sdk_env: None) -> None:
    from fashn import Fashn
    from standardwebhooks.webhooks import Webhook

    from shared.c2pa_signing import created_action, read_manifest
    from shared.provenance import DIGITAL_SOURCE_TYPE, read_digital_source_type

    receiver = Receiver(fail_first=1)
    client = Fashn()
    updates: list[str] = []
    result = client.predictions.subscribe(
        model_name="tryon-v1.6",
        inputs={
            "model_image": jpeg((200, 150, 120)),
            "garment_image": jpeg((20, 40, 200)),
            "category": "tops",
            "mode": "performance",
            "num_samples": 2,
            "seed": 42,
            "output_format": "jpeg",
        },
        webhook_url=receiver.url,
        poll_interval=200,
        timeout=240_000,
        on_queue_update=lambda status: updates.append(status.status),
    )
    assert result.status == "completed", result
    assert result.error is None and len(result.output or []) == 2
    assert set(updates) <= {"starting", "in_queue", "processing", "completed"} and updates[-1] == "completed"
    for url in result.output or []:
        image = requests.get(url, timeout=30)
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"  # a JPEG, as asked
        assert read_digital_source_type(image.content) == DIGITAL_SOURCE_TYPE
        manifest = read_manifest(image.content, "jpeg")  # signed with make run's development certificate
        assert manifest is not None and set(manifest["failure_codes"]) <= {"signingCredential.untrusted"}
        action = created_action(manifest)
        assert action is not None and action["digitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert action["parameters"]["smoke"] is True and action["softwareAgent"]["name"] == "catvton-maskfree"

    # status, as the SDK's types expect it
    status = client.predictions.status(result.id)
    assert status.status == "completed" and status.error is None and len(status.output or []) == 2

    # The webhook: retried once (503), then delivered; one id for the prediction; signature verifies.
    calls = receiver.wait(1)
    assert [c[2] for c in calls] == [503, 204]
    assert {c[0]["webhook-id"] for c in calls} == {f"msg_{result.id}"}
    headers, body, _ = calls[-1]
    payload = Webhook(account["secret"]).verify(body, headers)
    assert payload["id"] == result.id and payload["status"] == "completed" and len(payload["output"]) == 2
    assert payload["seeds"] == [42, 43]
    deliveries = requests.get(
        f"{account['base']}/v1/webhooks/deliveries", headers={"Authorization": f"Bearer {account['key']}"}, timeout=30
    ).json()["deliveries"]
    mine = [d for d in deliveries if d["prediction_id"] == result.id]
    assert len(mine) == 1 and mine[0]["status"] == "delivered" and mine[0]["attempts"] == 2
    assert mine[0]["last_status_code"] == 204

    # history shows both samples; a wrongly signed body does not verify
    job = requests.get(
        f"{account['base']}/jobs/{result.id}", headers={"Authorization": f"Bearer {account['token']}"}, timeout=30
    ).json()
    assert len(job["result_keys"]) == 2 and job["result_key"] == job["result_keys"][0]
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(account["secret"]).verify(body.replace(b"completed", b"failed"), headers)
    time.sleep(1.0)
    assert len(receiver.calls) == 2  # nothing doubled after delivery


def test_a_running_prediction_is_canceled_between_steps(account: dict[str, str], sdk_env: None) -> None:
    from fashn import Fashn

    receiver = Receiver()
    client = Fashn()
    run = client.predictions.run(
        model_name="catvton-maskfree",
        webhook_url=receiver.url,
        inputs={
            "model_image": jpeg((180, 120, 90)),
            "garment_image": jpeg((0, 90, 30)),
            "category": "tops",
            "mode": "quality",
            "num_samples": 4,
        },
    )
    deadline = time.monotonic() + 120
    while client.predictions.status(run.id).status != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    headers = {"Authorization": f"Bearer {account['key']}"}
    canceled = requests.post(f"{account['base']}/v1/cancel/{run.id}", headers=headers, timeout=30)
    assert canceled.status_code == 200 and canceled.json() == {"id": run.id, "status": "canceled"}
    calls = receiver.wait(1)
    assert json.loads(calls[0][1])["status"] == "canceled"
    assert client.predictions.status(run.id).status == "canceled"
    # weave stopped: nothing was stored for it
    time.sleep(2)
    assert client.predictions.status(run.id).output is None


def test_the_sdk_runs_fashn_vton_by_its_own_name(account: dict[str, str], sdk_env: None) -> None:
    """A Proteus model name selects that model explicitly; its name and seed reach the history."""
    from fashn import Fashn

    result = Fashn().predictions.subscribe(
        model_name="fashn-vton-1.5",
        inputs={
            "model_image": jpeg((180, 140, 110)),
            "garment_image": jpeg((200, 30, 40)),
            "category": "tops",
            "garment_photo_type": "flat-lay",
            "segmentation_free": True,
            "mode": "performance",
            "seed": 7,
        },
        poll_interval=200,
        timeout=240_000,
    )
    assert result.status == "completed" and result.error is None and len(result.output or []) == 1, result
    job = requests.get(
        f"{account['base']}/jobs/{result.id}", headers={"Authorization": f"Bearer {account['token']}"}, timeout=30
    ).json()
    assert job["model"] == "fashn-vton-1.5" and job["seed"] == 7, job
