"""Local storage: the disk backend, and its presigned URLs through the Flask blueprint."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.config import ConfigError, Settings
from shared.errors import DependencyUnavailable, PayloadTooLarge
from shared.storage import storage_from_settings
from shared.storage.local import LocalStorage
from shared.storage.local_http import CHUNK, local_files_blueprint

PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 200
KEY = "uploads/u1/abc-photo.png"


@pytest.fixture
def storage(settings: Settings) -> LocalStorage:
    made = storage_from_settings(settings)
    assert isinstance(made, LocalStorage)
    return made


@pytest.fixture
def client(storage: LocalStorage) -> FlaskClient:
    app = Flask(__name__)
    app.register_blueprint(local_files_blueprint(storage))
    return app.test_client()


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


class CountingStream(io.BytesIO):
    """A request body that records how much of it the server read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer) -> int:
        count = super().readinto(buffer)
        self.consumed += count
        return count

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.consumed += len(line)
        return line


def no_leftovers(storage: LocalStorage) -> bool:
    tmp = storage.root / "tmp"
    return storage.list("") == [] and (not tmp.exists() or list(tmp.iterdir()) == [])


# -- the disk backend ------------------------------------------------------------------


# put/get/head/list/delete, prefixes, bad keys and presign terms: test_contract.py, on both backends.


def test_a_failed_write_leaves_nothing(storage: LocalStorage) -> None:
    storage.put(KEY, b"old", "image/png")
    with pytest.raises(PayloadTooLarge), storage.open_writer(KEY, "image/png", max_bytes=10) as writer:
        writer.write(b"0123456789")
        writer.write(b"!")
    assert storage.get(KEY) == b"old"
    assert list((storage.root / "tmp").iterdir()) == []


def test_ping_and_unusable_directory(storage: LocalStorage, tmp_path: Path) -> None:
    storage.ping()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    broken = LocalStorage(blocker / "storage", public_url="http://x", secret="s")
    with pytest.raises(DependencyUnavailable):
        broken.ping()
    with pytest.raises(DependencyUnavailable):
        broken.put(KEY, PNG, "image/png")


def test_settings_pick_the_backend(settings: Settings) -> None:
    assert isinstance(storage_from_settings(settings), LocalStorage)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        storage_from_settings(settings.with_overrides(jwt_secret=""))


# -- presigned PUT and GET -------------------------------------------------------------


def signed_put(storage: LocalStorage, max_bytes: int = 1000, key: str = KEY) -> str:
    upload = storage.presign_upload(key, content_type="image/png", max_bytes=max_bytes, method="PUT", expires_s=60)
    assert upload.method == "PUT" and upload.headers == {"Content-Type": "image/png"} and upload.fields == {}
    assert upload.url.startswith("http://localhost:8000/files/uploads/u1/abc-photo.png?")
    return path_and_query(upload.url)


def test_presigned_put_then_get(storage: LocalStorage, client: FlaskClient) -> None:
    response = client.put(signed_put(storage), data=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.json
    assert response.headers["ETag"].startswith('"')
    assert storage.get(KEY) == PNG and storage.head(KEY).content_type == "image/png"  # type: ignore[union-attr]

    url = storage.presign_download(KEY, expires_s=60)
    fetched = client.get(path_and_query(url))
    assert fetched.status_code == 200
    assert fetched.data == PNG
    assert fetched.headers["Content-Type"] == "image/png"
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"


def test_put_with_an_expired_url_is_refused(storage: LocalStorage, client: FlaskClient) -> None:
    params = storage.signer.url_params("PUT", KEY, int(time.time()) - 5, "image/png", 1000)
    response = client.put(f"/files/{KEY}?{urlencode(params)}", data=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 403
    assert "expired" in response.json["error"]
    assert no_leftovers(storage)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q | {"max": "99999999"},
        lambda q: q | {"ct": "text/html"},
        lambda q: q | {"expires": str(int(q["expires"]) + 3600)},
        lambda q: q | {"sig": "0" * 64},
        lambda q: {k: v for k, v in q.items() if k != "sig"},
    ],
    ids=["max", "content-type", "expires", "signature", "unsigned"],
)
def test_put_with_a_tampered_url_is_refused(storage: LocalStorage, client: FlaskClient, tamper) -> None:
    url = signed_put(storage)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    changed = tamper(query)
    headers = {"Content-Type": changed.get("ct", "image/png")}
    response = client.put(f"/files/{KEY}?{urlencode(changed)}", data=PNG, headers=headers)
    assert response.status_code == 403, response.json
    assert response.is_json and response.json["code"] == "forbidden"
    assert no_leftovers(storage)


def test_a_put_url_is_bound_to_its_key(storage: LocalStorage, client: FlaskClient) -> None:
    query = urlsplit(signed_put(storage)).query
    response = client.put(f"/files/uploads/u2/evil.png?{query}", data=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 403
    assert no_leftovers(storage)


def test_put_with_the_wrong_content_type_is_refused(storage: LocalStorage, client: FlaskClient) -> None:
    response = client.put(signed_put(storage), data=b"<script>", headers={"Content-Type": "text/html"})
    assert response.status_code == 403
    assert "text/html" in response.json["error"]
    assert no_leftovers(storage)


def test_oversize_put_is_refused_without_reading_the_body(storage: LocalStorage, client: FlaskClient) -> None:
    body = CountingStream(b"x" * 5000)
    response = client.put(
        signed_put(storage, max_bytes=1000),
        input_stream=body,
        headers={"Content-Type": "image/png", "Content-Length": "5000"},
    )
    assert response.status_code == 413
    assert body.consumed == 0
    assert no_leftovers(storage)


def test_chunked_oversize_put_stops_reading_at_the_limit(storage: LocalStorage, client: FlaskClient) -> None:
    body = CountingStream(b"x" * (20 * CHUNK))
    response = client.put(
        signed_put(storage, max_bytes=1000),
        input_stream=body,
        headers={"Content-Type": "image/png", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert 1000 < body.consumed <= CHUNK
    assert no_leftovers(storage)


def test_empty_put_is_refused(storage: LocalStorage, client: FlaskClient) -> None:
    response = client.put(signed_put(storage), data=b"", headers={"Content-Type": "image/png"})
    assert response.status_code == 400
    assert no_leftovers(storage)


def test_get_checks_signature_expiry_key_and_method(storage: LocalStorage, client: FlaskClient) -> None:
    storage.put(KEY, PNG, "image/png")
    storage.put("uploads/u2/secret.png", b"secret", "image/png")
    good = urlsplit(storage.presign_download(KEY, expires_s=60))
    expired = urlencode(storage.signer.url_params("GET", KEY, int(time.time()) - 1))
    put_query = urlsplit(signed_put(storage)).query

    assert client.get(f"{good.path}?{good.query}").status_code == 200
    assert client.get(f"{good.path}?{expired}").status_code == 403
    assert client.get(f"{good.path}?{good.query.replace('sig=', 'sig=0')}").status_code == 403
    assert client.get(f"/files/uploads/u2/secret.png?{good.query}").status_code == 403
    assert client.get(f"{good.path}?{put_query}").status_code == 403  # a PUT signature is not a GET one
    assert client.get(good.path).status_code == 403
    storage.delete(KEY)
    missing = client.get(f"{good.path}?{good.query}")
    assert missing.status_code == 404 and missing.json["code"] == "not_found"


def test_bad_key_in_the_path_is_a_400(client: FlaskClient) -> None:
    response = client.put("/files/uploads/a%5Cb.png?expires=1&sig=x", data=b"x")
    assert response.status_code == 400
    assert "backslash" in response.json["error"]


def test_options_is_left_alone(client: FlaskClient) -> None:
    assert client.options(f"/files/{KEY}").status_code == 200
    assert client.options("/files").status_code == 200


# -- presigned POST (S3's browser form) ------------------------------------------------


def signed_post(storage: LocalStorage, max_bytes: int = 1000, expires_s: int = 60) -> dict[str, str]:
    upload = storage.presign_upload(
        KEY, content_type="image/png", max_bytes=max_bytes, method="POST", expires_s=expires_s
    )
    assert upload.method == "POST" and upload.url == "http://localhost:8000/files" and upload.headers == {}
    assert set(upload.fields) == {"key", "Content-Type", "policy", "signature"}
    return dict(upload.fields)


def post_form(client: FlaskClient, fields: dict[str, str], data: bytes, file_type: str = "image/png"):
    form = dict(fields) | {"file": (io.BytesIO(data), "photo.png", file_type)}
    return client.post("/files", data=form, content_type="multipart/form-data")


def test_presigned_post_stores_the_file(storage: LocalStorage, client: FlaskClient) -> None:
    fields = signed_post(storage)
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, 1000] in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"] and {"key": KEY} in policy["conditions"]

    response = post_form(client, fields, PNG, file_type="application/octet-stream")
    assert response.status_code == 204, response.data
    assert storage.get(KEY) == PNG
    assert storage.head(KEY).content_type == "image/png"  # type: ignore[union-attr]  # the signed type


def test_large_uploads_arrive_intact(storage: LocalStorage, client: FlaskClient) -> None:
    data = bytes(range(256)) * (3 * CHUNK // 256) + b"tail"
    fields = storage.presign_upload(KEY, content_type="image/png", max_bytes=len(data), method="POST").fields
    assert post_form(client, fields, data).status_code == 204
    assert storage.get(KEY) == data
    put = storage.presign_upload("uploads/u1/b.png", content_type="image/png", max_bytes=len(data))
    response = client.put(path_and_query(put.url), data=data, headers=put.headers)
    assert response.status_code == 200
    assert storage.get("uploads/u1/b.png") == data


def test_post_with_a_huge_field_is_refused(storage: LocalStorage, client: FlaskClient) -> None:
    response = post_form(client, signed_post(storage) | {"x-ignore-padding": "p" * 100_000}, PNG)
    assert response.status_code == 413
    assert no_leftovers(storage)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"Content-Type": "text/html"}, 403),
        ({"key": "uploads/u2/evil.png"}, 403),
        ({"signature": "0" * 64}, 403),
        ({"success_action_redirect": "https://evil.example"}, 403),
        ({"policy": base64.b64encode(b'{"expiration":"2999-01-01T00:00:00Z","conditions":[]}').decode()}, 403),
    ],
    ids=["content-type", "key", "signature", "extra-field", "forged-policy"],
)
def test_post_with_a_changed_form_is_refused(
    storage: LocalStorage, client: FlaskClient, change: dict[str, str], status: int
) -> None:
    response = post_form(client, signed_post(storage) | change, PNG)
    assert response.status_code == status, response.json
    assert response.json["code"] == "forbidden"
    assert no_leftovers(storage)


def test_post_with_an_expired_policy_is_refused(storage: LocalStorage, client: FlaskClient) -> None:
    from datetime import UTC, datetime, timedelta

    fields = storage.signer.policy(KEY, "image/png", 1000, datetime.now(UTC) - timedelta(seconds=1))
    response = post_form(client, fields, PNG)
    assert response.status_code == 403 and "expired" in response.json["error"]
    assert no_leftovers(storage)


def test_oversize_post_is_refused_and_not_read_in_full(storage: LocalStorage, client: FlaskClient) -> None:
    boundary = "proteusboundary"
    fields = signed_post(storage, max_bytes=1000)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = (
        b"".join(parts)
        + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
    )
    body = CountingStream(head + b"x" * (50 * CHUNK) + f"\r\n--{boundary}--\r\n".encode())
    response = client.post(
        "/files",
        input_stream=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers={"Content-Length": str(len(body.getvalue()))},
    )
    assert response.status_code == 413
    assert body.consumed <= len(head) + 2 * CHUNK
    assert no_leftovers(storage)


def test_empty_or_missing_file_in_post_is_refused(storage: LocalStorage, client: FlaskClient) -> None:
    assert post_form(client, signed_post(storage), b"").status_code == 400
    no_file = client.post("/files", data=signed_post(storage), content_type="multipart/form-data")
    assert no_file.status_code == 400
    assert client.post("/files", data=b"{}", content_type="application/json").status_code == 400
    assert no_leftovers(storage)


def test_a_relative_root_serves_downloads_from_another_working_directory(tmp_path, monkeypatch):
    """`make run` uses the relative STORAGE_DIR var/storage; Flask's send_file must still find the file."""
    from flask import Flask

    from shared.storage.local import LocalStorage
    from shared.storage.local_http import local_files_blueprint

    monkeypatch.chdir(tmp_path)
    storage = LocalStorage("var/storage", public_url="http://testserver", secret="s" * 40)
    storage.put("outputs/weaver/u1/j1.png", b"\x89PNG fake", "image/png")
    app = Flask("elsewhere", root_path=str(tmp_path / "somewhere-else"))
    app.register_blueprint(local_files_blueprint(storage))
    url = storage.presign_download("outputs/weaver/u1/j1.png", expires_s=60)
    response = app.test_client().get(url.removeprefix("http://testserver"))
    assert response.status_code == 200 and response.data == b"\x89PNG fake"
