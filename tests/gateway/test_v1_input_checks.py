"""What /v1/run refuses before anything is queued, each answer a 4xx naming the field and
value: bad fields, oversized or unreadable images and uploaded keys, and images fetched by URL
(checked like uploads, redirects to private addresses refused)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from tests.gateway.helpers import Person, settings_of, storage_of, stream_entries
from tests.gateway.v1_support import Integrator, data_url, png

# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"model_name": "tryon-v9"}, "model_name", "'tryon-v9'"),
        ({"inputs": {"category": "shirts"}}, "inputs.category", "'shirts'"),
        ({"inputs": {"mode": "turbo"}}, "inputs.mode", "'turbo'"),
        ({"inputs": {"moderation_level": "strict"}}, "inputs.moderation_level", "'strict'"),
        ({"inputs": {"garment_photo_type": "mannequin"}}, "inputs.garment_photo_type", "'mannequin'"),
        ({"inputs": {"num_samples": 0}}, "inputs.num_samples", "0"),
        ({"inputs": {"num_samples": 5}}, "inputs.num_samples", "5"),
        ({"inputs": {"num_samples": "2"}}, "inputs.num_samples", "'2'"),
        ({"inputs": {"output_format": "gif"}}, "inputs.output_format", "'gif'"),
        ({"inputs": {"seed": -1}}, "inputs.seed", "-1"),
        ({"inputs": {"colour": "red"}}, "inputs.colour", "'inputs.colour' cannot be set"),
        ({"inputs": {"model_image": "data:image/png;base64,@@@@"}}, "inputs.model_image", "@@@@"),
        ({"inputs": {"model_image": data_url(b"not an image at all")}}, "inputs.model_image", "readable"),
        ({"inputs": {"garment_image": "https://127.0.0.1/garment.png"}}, "inputs.garment_image", "127.0.0.1"),
        ({"inputs": {"garment_image": "https://169.254.169.254/latest"}}, "inputs.garment_image", "169.254.169.254"),
        ({"inputs": {"model_image": "https://10.1.2.3/person.png"}}, "inputs.model_image", "10.1.2.3"),
        ({"inputs": {"model_image": "https://[::1]/person.png"}}, "inputs.model_image", "::1"),
        ({"inputs": {"garment_image": "http://example.com/g.png"}}, "inputs.garment_image", "https"),
        ({"inputs": {"garment_image": "uploads/someone-else/g.png"}}, "inputs.garment_image", "someone-else"),
        ({"webhook_url": "ftp://x"}, "webhook_url", "'ftp://x'"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field_and_value(
    shop: Integrator, change: dict[str, Any], field: str, words: str
) -> None:
    payload: dict[str, Any] = {"model_name": "tryon-v1.6", "inputs": shop.images()}
    for name, value in change.items():
        payload[name] = {**payload[name], **value} if name == "inputs" else value
    response = shop.client.post("/v1/run", json=payload, headers=shop.headers)
    assert 400 <= response.status_code < 500, response.get_json()
    body = response.get_json()
    assert body["field"] == field and words in body["message"], body
    assert body["error"] == "BadRequest"


def test_an_oversized_image_is_refused_before_anything_is_queued(make_app: Callable[..., Flask]) -> None:
    app = make_app(max_upload_bytes=2000)
    shop = Integrator(Person(app))
    buffer = io.BytesIO()
    Image.frombytes("RGB", (100, 100), os.urandom(30000)).save(buffer, "PNG")  # noise: about 30 kB
    response = shop.run({"model_image": data_url(buffer.getvalue())})
    assert response.status_code == 400 and response.get_json()["field"] == "inputs.model_image"
    assert "2000" in response.get_json()["message"]
    assert stream_entries(app, "proteus:tryon") == []


def test_an_uploaded_key_is_checked_as_an_image_before_anything_is_queued(make_app: Callable[..., Flask]) -> None:
    app = make_app(max_upload_bytes=2000)
    shop = Integrator(Person(app))
    uploads = f"uploads/{shop.person.get('/user').get_json()['id']}"
    storage_of(app).put(f"{uploads}/notes.png", b"a text file, not an image", "image/png")
    storage_of(app).put(f"{uploads}/big.png", b"\x89PNG" + os.urandom(30000), "image/png")
    for key, words in (
        (f"{uploads}/notes.png", "readable"),
        (f"{uploads}/big.png", "2000"),
        (f"{uploads}/no.png", "exist"),
    ):
        response = shop.run({"garment_image": key})
        body = response.get_json()
        assert response.status_code == 400 and body["field"] == "inputs.garment_image", body
        assert key in body["message"] and words in body["message"], body
    assert stream_entries(app, "proteus:tryon") == []


# -- images fetched by URL ---------------------------------------------------------------------


@pytest.fixture
def image_server() -> Iterator[str]:
    """A local server with /person.png, /text (not an image) and /redirect (to the metadata address)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "https://169.254.169.254/latest/meta-data")
                self.end_headers()
                return
            body, kind = (png(), "image/png") if self.path == "/person.png" else (b"hello", "text/plain")
            if self.path == "/big.png":
                body, kind = b"\x89PNG" + os.urandom(3 * 1024 * 1024), "image/png"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_images_by_url_are_fetched_checked_and_redirects_guarded(
    make_app: Callable[..., Flask], image_server: str
) -> None:
    app = make_app(api_fetch_allowed_hosts=("127.0.0.1",), max_upload_bytes=1_000_000)
    shop = Integrator(Person(app))
    ok = shop.run({"model_image": f"{image_server}/person.png"})
    assert ok.status_code == 200, ok.get_json()
    ((_, event),) = stream_entries(app, "proteus:tryon")
    assert storage_of(app).get(event["data"]["person_key"]) == png()
    text = shop.run({"model_image": f"{image_server}/text"})
    assert text.status_code == 400 and "readable" in text.get_json()["message"]
    redirected = shop.run({"garment_image": f"{image_server}/redirect"})
    assert redirected.status_code == 400 and "169.254.169.254" in redirected.get_json()["message"]
    big = shop.run({"garment_image": f"{image_server}/big.png"})
    assert 400 <= big.status_code < 500 and big.get_json()["field"] == "inputs.garment_image", big.get_json()
    assert str(settings_of(app).max_upload_bytes) in big.get_json()["message"], big.get_json()
    assert len(stream_entries(app, "proteus:tryon")) == 1  # only the first run
