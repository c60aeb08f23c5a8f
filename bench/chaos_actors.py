"""The actors of bench/chaos.py: the `make run` stack it starts and kills (found through
/proc), and the users who sign up, submit try-ons and listen on their WebSockets."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import simple_websocket
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {  # what a random kill may hit: (command-line needle, master or worker)
    "weave-master": ("functions/weave/gunicorn.conf.py", "master"),
    "weave-worker": ("functions/weave/gunicorn.conf.py", "worker"),
    "runner": ("shared.streams.runner", "master"),
    "notify": ("functions/notify/gunicorn.conf.py", "master"),
    "gateway": ("gateway/gunicorn.conf.py", "master"),
}


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and (s := _stat(int(p.name))) and int(s[1]) == pid and s[0] != "Z"
    ]


class Stack:
    """One `make run` process at a time on a fixed data dir and gateway port."""

    def __init__(self, env: dict[str, str], port: int, log_dir: Path) -> None:
        self.env, self.port, self.log_dir = env, port, log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 240) -> float:
        """Start make run and wait until it says it is running; returns the seconds it took."""
        self.starts += 1
        log = self.log_dir / f"make-run-{self.starts}.log"
        started = time.monotonic()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shared.devstack", "--port", str(self.port), "--free-ports"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        while "Proteus is running" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() - started > timeout_s:
                raise RuntimeError(f"make run did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        return time.monotonic() - started

    def processes(self, name: str) -> list[int]:
        """The pids of target `name` (a gunicorn master or its workers, the runner, Redis)."""
        if self.proc is None:
            return []
        top = children(self.proc.pid)
        if name == "redis":
            return [p for p in top if "redis-server" in _cmdline(p)]
        needle, role = TARGETS.get(name, (name, "all"))
        masters = [p for p in top if needle in _cmdline(p)]
        if role == "master":
            return masters
        workers = [w for m in masters for w in children(m)]
        return workers if role == "worker" else masters + workers

    def signal_all(self, name: str, signum: int) -> list[int]:
        pids = self.processes(name)
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        return pids

    def stop(self, signum: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 128), color).save(buf, "JPEG")
    return buf.getvalue()


class User:
    """One person using the API, retrying as a patient client would (same Idempotency-Key)."""

    def __init__(self, base: str, name: str) -> None:
        self.base, self.name = base, name
        self.http = requests.Session()
        self.token = ""
        self.keys: dict[str, str] = {}

    def call(
        self, method: str, path: str, *, deadline_s: float = 300, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        """The answer to the request, retried while the service is down, 5xx or 429."""
        end = time.monotonic() + deadline_s
        headers = {**(headers or {}), **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        while True:
            try:
                response = self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
                if response.status_code < 500 and response.status_code != 429:
                    return response
            except requests.RequestException:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"{method} {path} kept failing for {deadline_s:.0f} s")
            time.sleep(0.5)

    def sign_up(self) -> None:
        body = {
            "user_name": self.name,
            "email": f"{self.name}-{uuid.uuid4().hex[:6]}@chaos.test",
            "password": "chaos horse battery",
        }
        assert self.call("POST", "/user/signup", json=body).status_code == 201
        login = self.call("POST", "/user/login", json={k: body[k] for k in ("email", "password")})
        self.token = login.json()["token"]
        for field_name, color in (("user_snap", (200, 150, 120)), ("uncleaned_outfit", (20, 40, 200))):
            signed = self.call(
                "POST", "/images/presignedUploadUrl", json={"fileName": f"{field_name}.jpg", "fileType": "image/jpeg"}
            ).json()
            requests.put(signed["url"], data=jpeg(color), headers={"Content-Type": "image/jpeg"}, timeout=30)
            self.keys[field_name] = signed["key"]

    def submit(self) -> str:
        vton = self.call("POST", "/vton", json=dict(self.keys)).json()["id"]
        body = {
            "vton_id": vton,
            "user_snap_s3": self.keys["user_snap"],
            "uncleaned_outfit_s3": self.keys["uncleaned_outfit"],
            "category": "upper",
            "steps": 2,
            "height": 64,
            "width": 64,
            "seed": 7,
        }
        response = self.call("POST", "/jobs/weaver", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])


class WSClient(simple_websocket.Client):
    """simple-websocket's client, processing frames that arrived with the handshake."""

    def handshake(self) -> None:
        super().handshake()
        self._handle_events()
        self.connected = True


@dataclass
class Socket:
    """A user's WebSocket, reconnecting with last_event_id; every completion it received."""

    user: User
    completions: list[dict[str, Any]] = field(default_factory=list)
    last_event_id: str | None = None
    reconnects: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            query = f"?token={self.user.token}" + (f"&last_event_id={self.last_event_id}" if self.last_event_id else "")
            try:
                ws = WSClient.connect(self.user.base.replace("http", "ws", 1) + "/ws" + query)
            except Exception:  # the gateway is down: try again
                self.stop.wait(0.5)
                continue
            self.reconnects += 1
            try:
                while not self.stop.is_set():
                    text = ws.receive(timeout=1)
                    if text is None:
                        continue
                    message = json.loads(text)
                    if "job_type" in message and "status" in message:
                        self.completions.append({**message, "at": time.monotonic()})
                        self.last_event_id = message.get("event_id") or self.last_event_id
            except Exception:  # closed under us: reconnect and replay
                pass
            finally:
                with contextlib.suppress(Exception):
                    ws.close()
