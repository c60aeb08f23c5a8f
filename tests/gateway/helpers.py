"""Helpers for the gateway tests: building apps, people who sign up and log in, checking
responses against the OpenAPI document, and a real (werkzeug, threaded) server."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import simple_websocket
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from shared.config import Settings
from tests.openapi_check import check, check_message, schema_errors

PASSWORD = "correct horse battery"
# A valid 1x1 PNG.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
    b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82"
)


# -- OpenAPI checking -------------------------------------------------------------------------

validate_schema = schema_errors


def check_against_openapi(app: Flask, method: str, path: str, response: Any) -> None:
    """The status is documented for the operation and the JSON body matches its schema."""
    body = response.get_json(silent=True) if response.is_json else None
    check(method, path, response.status_code, response.get_data(), body)


class CheckedClient(FlaskClient):
    """A test client that checks every answer against /openapi.json."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        check_against_openapi(self.application, response.request.method, response.request.path, response)
        return response


# -- the app ---------------------------------------------------------------------------------


def make_settings(base: Settings, database_url: str, redis_url: str, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_key_prefix": prefix,
        "rate_limit": "1000 per minute",
        "public_url": "http://localhost",
        "bcrypt_rounds": 4,  # instead of 12: the same algorithm, a suite that runs in seconds
    }
    values.update(overrides)
    return base.with_overrides(**values)


_TEMPLATES: dict[str, Path] = {}


def migrate(database_url: str) -> None:
    """Alembic to head; a SQLite file is copied from one migrated once per session (faster)."""
    from shared.db.migrate import upgrade

    if not database_url.startswith("sqlite:///"):
        upgrade(database_url)
        return
    target = Path(database_url[len("sqlite:///") :])
    if "template" not in _TEMPLATES:
        template = Path(tempfile.mkdtemp(prefix="proteus-gw-template-")) / "template.db"
        upgrade(f"sqlite:///{template}")
        _TEMPLATES["template"] = template
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATES["template"], target)


def build_app(settings: Settings) -> Flask:
    """The gateway app, with its own upload-signing stage answering over HTTP on a free port
    (the gateway calls it for every presigned upload, as under `make run`)."""
    from gateway.app import create_app

    migrate(settings.database_url)
    signer = UploadSigningServer(settings)
    settings = settings.with_overrides(function_urls={**settings.function_urls, "upload_signing": signer.url})
    app = create_app(settings)
    app.config["TESTING"] = True
    app.test_client_class = CheckedClient
    app.extensions["test-upload-signing"] = signer
    return app


def close_app(app: Flask) -> None:
    app.extensions["proteus"].close()
    signer = app.extensions.pop("test-upload-signing", None)
    if signer is not None:
        signer.stop()


class UploadSigningServer:
    """functions/upload_signing's app on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, settings: Settings) -> None:
        from werkzeug.serving import make_server

        from functions.upload_signing.main import create_app as create_signing_app

        self.server = make_server("127.0.0.1", 0, create_signing_app(settings), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="upload-signing", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)


def storage_of(app: Flask) -> Any:
    return app.extensions["proteus"].storage


def redis_of(app: Flask) -> Any:
    return app.extensions["proteus"].redis


def sessions_of(app: Flask) -> Any:
    return app.extensions["proteus"].sessions


def settings_of(app: Flask) -> Settings:
    return app.config["PROTEUS_SETTINGS"]  # type: ignore[no-any-return]


def stream_entries(app: Flask, stream: str) -> list[tuple[str, dict[str, Any]]]:
    """Entries of a (prefixed) event stream, each with its CloudEvent parsed."""
    entries = redis_of(app).xrange(settings_of(app).redis_key_prefix + stream)
    return [(entry_id, json.loads(fields["event"])) for entry_id, fields in entries]


def multipart(fields: dict[str, str], file_bytes: bytes, content_type: str) -> dict[str, Any]:
    data: dict[str, Any] = dict(fields)
    data["file"] = (io.BytesIO(file_bytes), "upload", content_type)
    return data


# -- people ------------------------------------------------------------------------------------


class Person:
    """A signed-up, logged-in user of one app, with helpers for the common calls."""

    def __init__(self, app: Flask, name: str | None = None) -> None:
        self.app = app
        self.client = app.test_client()
        self.name = name or f"user-{uuid.uuid4().hex[:6]}"
        self.email = f"{self.name}@example.com"
        body = {"user_name": self.name, "email": self.email, "password": PASSWORD}
        response = self.client.post("/user/signup", json=body)
        assert response.status_code == 201, response.get_json()
        self.id: str = response.get_json()["id"]
        self.token = self.login()
        self.client.delete_cookie("token")  # Bearer only, unless a test sets the cookie

    def login(self, password: str = PASSWORD) -> str:
        response = self.client.post("/user/login", json={"email": self.email, "password": password})
        assert response.status_code == 200, response.get_json()
        return str(response.get_json()["token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return getattr(self.client, method)(path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._call("get", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self._call("post", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self._call("put", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self._call("delete", path, **kwargs)

    def upload(self, name: str = "photo.png", data: bytes = PNG, content_type: str = "image/png") -> str:
        """Presign and PUT an image the way the original frontend does; returns the key."""
        response = self.post("/images/presignedUploadUrl", json={"fileName": name, "fileType": content_type})
        assert response.status_code == 200, response.get_json()
        signed = response.get_json()
        url = urlsplit(signed["url"])
        put = self.client.put(f"{url.path}?{url.query}", data=data, headers=signed["headers"])
        assert put.status_code == 200, put.get_data(as_text=True)
        return str(signed["key"])

    def create_tryon(self, **extra: Any) -> dict[str, Any]:
        body = {"user_snap": self.upload("me.png"), "uncleaned_outfit": self.upload("shirt.png"), **extra}
        response = self.post("/vton", json=body)
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    def start_weave(self, tryon: dict[str, Any], headers: dict[str, str] | None = None, **extra: Any) -> Any:
        body = {
            "vton_id": tryon["id"],
            "user_snap_s3": tryon["user_snap"],
            "uncleaned_outfit_s3": tryon["uncleaned_outfit"],
            **extra,
        }
        return self.post("/jobs/weaver", json=body, headers=headers or {})


# -- a real server for WebSockets -------------------------------------------------------------


class WSClient(simple_websocket.Client):
    """simple-websocket's client with its handshake race fixed.

    Its handshake reads the 101 answer and takes only the first event from it: frames that
    came in the same packet (the server's first message, or its 4401 close) would wait in
    wsproto until more bytes arrive, or be lost at the EOF. This processes them at once.
    """

    def handshake(self) -> None:
        super().handshake()
        self._handle_events()
        self.connected = True  # a close that came along: the reader thread then finds the EOF

    def receive(self, timeout: float | None = None) -> Any:
        """The next message, checked against the document's WebSocket messages."""
        message = super().receive(timeout)
        if message is not None:
            check_message(message)
        return message


class LiveServer:
    """The app under werkzeug's threaded server on a free port (in this process)."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
