"""upload_signing through its CloudEvents app: upload.requested in, upload.signed out.

The reply must name a fresh key under the user's upload prefix and a working presigned
upload (PUT by default, POST when a size is declared); a type or size the service does
not accept is refused with the status and the value named.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask

from functions.upload_signing.main import create_app
from shared import event_types as t
from shared.config import Settings
from shared.events import event_data
from shared.storage import storage_from_settings
from shared.storage.local_http import local_files_blueprint
from tests.functions.cloudevents_support import (
    INVALID_CASES,
    Invalid,
    Valid,
    binary_request,
    check_invalid,
    check_valid_pair,
    post,
    reply_of,
    structured_request,
)
from tests.functions.conftest import image_bytes, new_id

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def app(module_settings: Settings) -> Flask:
    return create_app(module_settings)


def request_data(user_id: str, **extra: object) -> dict[str, object]:
    return {"user_id": user_id, "file_name": "my shirt.png", "content_type": "image/png", **extra}


def valid(user_id: str | None = None, **extra: object) -> Valid:
    user_id = user_id or new_id()
    return Valid(t.UPLOAD_REQUESTED, request_data(user_id, **extra), user_id, None, "file_name")


def sign(client, user_id: str, **extra: object) -> dict:
    response = post(client, binary_request(t.UPLOAD_REQUESTED, request_data(user_id, **extra), user_id=user_id))
    event = reply_of(response)
    assert event.get_type() == t.UPLOAD_SIGNED
    return event_data(event)


# --------------------------------------------------------------------------- the CloudEvents contract


def test_binary_and_structured_events_are_answered_with_upload_signed(client) -> None:
    first, second = valid(), valid()
    responses = check_valid_pair(client, first, second, reply_type=t.UPLOAD_SIGNED)
    for response, sent in zip(responses, (first, second)):
        reply = reply_of(response)
        assert reply.get_extension("userid") == sent.user_id
        data = event_data(reply)
        assert data["key"].startswith(f"uploads/{sent.user_id}/")
        assert reply.get_subject() == data["key"]


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.name)
def test_invalid_event_is_refused(client, case: Invalid, redis_client: redis.Redis, module_prefix: str) -> None:
    check_invalid(client, case, valid(), redis_client, module_prefix)


# --------------------------------------------------------------------------- signing rules


def test_put_by_default_under_the_users_prefix(client, module_settings: Settings) -> None:
    user_id = new_id()
    data = sign(client, user_id)
    assert data["method"] == "PUT"
    assert data["key"].startswith(f"uploads/{user_id}/") and data["key"].endswith("-my-shirt.png")
    assert data["headers"] == {"Content-Type": "image/png"} and data["fields"] == {}
    assert data["url"].startswith(f"{module_settings.public_url}/files/{data['key']}?")
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    remaining = (expires - datetime.now(UTC)).total_seconds()
    assert 0 < remaining <= module_settings.upload_url_ttl_s
    assert sign(client, user_id)["key"] != data["key"], "every upload gets a fresh key"


def test_declared_size_gives_a_post_form(client, module_settings: Settings) -> None:
    user_id = new_id()
    data = sign(client, user_id, size=1234)
    assert data["method"] == "POST"
    assert data["key"].startswith(f"uploads/{user_id}/")
    assert data["url"] == f"{module_settings.public_url}/files"
    assert data["fields"], "a POST upload carries its policy fields"
    assert data["headers"] == {}


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_non_image_type_is_415_naming_it(client, mode: str) -> None:
    user_id = new_id()
    build = binary_request if mode == "binary" else structured_request
    response = post(
        client, build(t.UPLOAD_REQUESTED, request_data(user_id, content_type="image/svg+xml"), user_id=user_id)
    )
    assert response.status_code == 415, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "unsupported_media_type"
    assert "image/svg+xml" in body["message"] and body["field"]


def test_oversize_declared_size_is_413(client, module_settings: Settings) -> None:
    user_id = new_id()
    too_big = module_settings.max_upload_bytes + 1
    response = post(client, binary_request(t.UPLOAD_REQUESTED, request_data(user_id, size=too_big), user_id=user_id))
    assert response.status_code == 413, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "too_large" and str(too_big) in body["message"] and body["field"]
    # the limit itself is accepted
    assert sign(client, user_id, size=module_settings.max_upload_bytes)["method"] == "POST"


def test_userid_must_match_the_data(client) -> None:
    owner, other = new_id(), new_id()
    response = post(client, binary_request(t.UPLOAD_REQUESTED, request_data(owner), user_id=other))
    assert response.status_code == 400
    assert response.get_json()["field"] == "userid"


# --------------------------------------------------------------------------- the signed URLs work


@pytest.fixture(scope="module")
def files_app(module_settings: Settings) -> Flask:
    """The local storage's HTTP side, where the presigned URLs point."""
    files = Flask("files")
    files.register_blueprint(local_files_blueprint(storage_from_settings(module_settings)))
    return files


def test_signed_put_url_uploads_to_local_storage(client, files_app: Flask, module_settings: Settings) -> None:
    user_id = new_id()
    data = sign(client, user_id)
    url = urlsplit(data["url"])
    body = image_bytes((10, 200, 30), fmt="PNG")
    files = files_app.test_client()
    response = files.put(f"{url.path}?{url.query}", data=body, headers=data["headers"])
    assert response.status_code == 200, response.get_data(as_text=True)
    storage = storage_from_settings(module_settings)
    assert storage.get(data["key"]) == body
    assert storage.head(data["key"]).content_type == "image/png"
    # the signature covers the key: another key with the same query is refused
    forged = files.put(f"/files/uploads/{user_id}/other.png?{url.query}", data=body, headers=data["headers"])
    assert forged.status_code == 403
    assert storage.head(f"uploads/{user_id}/other.png") is None


def test_signed_post_form_uploads_to_local_storage(client, files_app: Flask, module_settings: Settings) -> None:
    user_id = new_id()
    body = image_bytes((10, 20, 230), fmt="PNG")
    data = sign(client, user_id, size=len(body))
    form: dict[str, object] = dict(data["fields"])
    form["file"] = (io.BytesIO(body), "upload.png", "image/png")
    response = files_app.test_client().post(urlsplit(data["url"]).path, data=form, content_type="multipart/form-data")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert storage_from_settings(module_settings).get(data["key"]) == body


def test_each_missing_field_is_listed_once(client) -> None:
    user_id = new_id()
    response = post(client, binary_request(t.UPLOAD_REQUESTED, {"user_id": user_id}, user_id=user_id))
    assert response.status_code == 400
    body = response.get_json()
    assert body["field"] == "data.file_name"
    fields = [problem["field"] for problem in body["details"]["errors"]]
    assert fields == ["data.file_name", "data.content_type"]
