"""Presigned uploads and downloads: image types only, size limits, owner prefixes only."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.gateway.helpers import PNG, multipart, settings_of, storage_of


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_presigned_put_then_upload_then_download(app, person) -> None:
    response = person.post("/images/presignedUploadUrl", json={"fileName": "My Photo (1).PNG", "fileType": "image/png"})
    assert response.status_code == 200
    signed = response.get_json()
    assert signed["method"] == "PUT" and signed["headers"] == {"Content-Type": "image/png"}
    assert signed["uploadUrl"] == signed["url"] and signed["fields"] == {}
    assert re.fullmatch(rf"uploads/{person.id}/[0-9a-f]{{32}}-My-Photo-1-.PNG", signed["key"]), signed["key"]

    put = person.client.put(_path(signed["url"]), data=PNG, headers=signed["headers"])
    assert put.status_code == 200
    assert storage_of(app).get(signed["key"]) == PNG

    download = person.post("/images/presignedDownloadUrl", json={"key": signed["key"]})
    assert download.status_code == 200
    got = person.client.get(_path(download.get_json()["url"]))
    assert got.status_code == 200 and got.data == PNG


def test_the_put_url_is_bound_to_its_content_type(person) -> None:
    signed = person.post("/images/presignedUploadUrl", json={"fileName": "a.png", "fileType": "image/png"}).get_json()
    wrong = person.client.put(_path(signed["url"]), data=PNG, headers={"Content-Type": "text/html"})
    assert wrong.status_code == 403


def test_a_declared_size_gives_a_presigned_post(app, person) -> None:
    response = person.post(
        "/images/presignedUploadUrl", json={"fileName": "a.jpg", "fileType": "image/jpeg", "fileSize": len(PNG)}
    )
    assert response.status_code == 200
    signed = response.get_json()
    assert signed["method"] == "POST" and signed["fields"] and signed["headers"] == {}
    posted = person.client.post(_path(signed["url"]), data=multipart(signed["fields"], PNG, "image/jpeg"))
    assert posted.status_code == 204
    assert storage_of(app).head(signed["key"]).size == len(PNG)


def test_post_on_request_and_put_on_request(person) -> None:
    asked_post = person.post(
        "/images/presignedUploadUrl", json={"fileName": "a.png", "fileType": "image/png", "method": "POST"}
    )
    assert asked_post.get_json()["method"] == "POST"
    asked_put = person.post(
        "/images/presignedUploadUrl",
        json={"fileName": "a.png", "fileType": "image/png", "method": "put", "fileSize": 10},
    )
    assert asked_put.get_json()["method"] == "PUT"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"fileName": "a.pdf", "fileType": "application/pdf"}, 415, "fileType"),
        ({"fileName": "a.svg", "fileType": "image/svg+xml"}, 415, "fileType"),
        ({"fileName": "a.png", "fileType": "image/png", "fileSize": 10**9}, 413, "fileSize"),
        ({"fileName": "a.png", "fileType": "image/png", "fileSize": "12"}, 400, "fileSize"),
        ({"fileName": "a.png", "fileType": "image/png", "fileSize": 0}, 400, "fileSize"),
        ({"fileName": "a.png", "fileType": "image/png", "fileSize": True}, 400, "fileSize"),
        ({"fileType": "image/png"}, 400, "fileName"),
        ({"fileName": "a.png"}, 400, "fileType"),
        ({"fileName": 7, "fileType": "image/png"}, 400, "fileName"),
        ({"fileName": "a.png", "fileType": "image/png", "method": "DELETE"}, 400, "method"),
    ],
)
def test_presign_upload_refusals_name_the_field(person, body, status, field) -> None:
    response = person.post("/images/presignedUploadUrl", json=body)
    assert response.status_code == status
    error = response.get_json()
    assert error["field"] == field
    if status == 415:
        assert body["fileType"] in error["message"]
    if status == 413:
        assert str(body["fileSize"]) in error["message"]


def test_the_upload_limit_comes_from_settings(make_app) -> None:
    from tests.gateway.helpers import Person

    app = make_app(max_upload_bytes=1000)
    someone = Person(app)
    assert (
        someone.post(
            "/images/presignedUploadUrl", json={"fileName": "a.png", "fileType": "image/png", "fileSize": 1000}
        ).status_code
        == 200
    )
    assert (
        someone.post(
            "/images/presignedUploadUrl", json={"fileName": "a.png", "fileType": "image/png", "fileSize": 1001}
        ).status_code
        == 413
    )
    assert settings_of(app).max_upload_bytes == 1000


def test_file_names_are_sanitised(person) -> None:
    key = person.post(
        "/images/presignedUploadUrl", json={"fileName": "../../etc/pass wd.png", "fileType": "image/png"}
    ).get_json()["key"]
    assert key.startswith(f"uploads/{person.id}/") and ".." not in key and " " not in key and key.count("/") == 2


def test_download_only_for_the_callers_own_prefixes(app, person, other) -> None:
    theirs = other.upload()
    storage_of(app).put(f"outputs/weaver/{person.id}/job.png", PNG, "image/png")
    for key in (
        f"uploads/{person.id}/x.png",
        f"outputs/weaver/{person.id}/job.png",
        f"outputs/tailor/{person.id}/h-cutout.png",
    ):
        assert person.post("/images/presignedDownloadUrl", json={"key": key}).status_code == 200
    for key in (
        theirs,
        f"uploads/{person.id}/../{other.id}/x.png",
        "uploads/",
        f"uploads/{person.id}/",
        "etc/passwd",
        f"/uploads/{person.id}/x.png",
        f"outputs/weaver/{other.id}/job.png",
    ):
        response = person.post("/images/presignedDownloadUrl", json={"key": key})
        assert response.status_code == 404, key
        assert response.get_json()["code"] == "not_found"


def test_download_bad_bodies(person) -> None:
    assert person.post("/images/presignedDownloadUrl", json={}).get_json()["field"] == "key"
    assert person.post("/images/presignedDownloadUrl", json={"key": 5}).status_code == 400
    assert person.post("/images/presignedDownloadUrl", data="key", content_type="text/plain").status_code == 400


def test_images_need_authentication(client) -> None:
    for path, body in (
        ("/images/presignedUploadUrl", {"fileName": "a.png", "fileType": "image/png"}),
        ("/images/presignedDownloadUrl", {"key": "uploads/x/y.png"}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 401 and response.get_json()["message"] == "Unauthorized"


def test_presign_is_rate_limited_per_user(make_app) -> None:
    from tests.gateway.helpers import Person

    app = make_app(rate_limit="2 per minute")
    someone = Person(app)
    body = {"fileName": "a.png", "fileType": "image/png"}
    assert [someone.post("/images/presignedUploadUrl", json=body).status_code for _ in range(2)] == [200, 200]
    limited = someone.post("/images/presignedUploadUrl", json=body)
    assert limited.status_code == 429
    assert limited.get_json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) > 0
    # Downloads are not limited (the history view presigns one per image).
    assert someone.post("/images/presignedDownloadUrl", json={"key": f"uploads/{someone.id}/a.png"}).status_code == 200


def test_uploads_are_signed_by_the_upload_signing_stage_over_http(app, person) -> None:
    """The gateway asks the stage (a binary-mode upload.requested) and answers with its reply."""
    signer = app.extensions["test-upload-signing"]
    seen: list[dict[str, str]] = []
    wsgi = signer.server.app

    def spy(environ, start_response):
        seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_CE_") or k == "CONTENT_TYPE"})
        return wsgi(environ, start_response)

    signer.server.app = spy
    answer = person.post("/images/presignedUploadUrl", json={"fileName": "a b.png", "fileType": "image/png"})
    assert answer.status_code == 200 and answer.get_json()["key"].startswith(f"uploads/{person.id}/")
    assert len(seen) == 1 and seen[0]["HTTP_CE_TYPE"] == "dev.proteus.upload.requested"
    assert seen[0]["HTTP_CE_USERID"] == person.id and seen[0]["CONTENT_TYPE"].startswith("application/json")


def test_upload_signing_down_is_a_readable_503(make_app) -> None:
    from tests.gateway.helpers import Person

    app = make_app()
    signer = app.extensions["test-upload-signing"]
    signer.stop()  # nothing answers at its URL any more
    someone = Person(app)
    answer = someone.post("/images/presignedUploadUrl", json={"fileName": "a.png", "fileType": "image/png"})
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["code"] == "dependency_unavailable" and "upload signing is not answering" in body["message"]
