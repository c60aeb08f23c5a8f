"""What the public API (/v1) tests share: small PNGs, data: URLs and `Integrator`, a person
calling /v1 with an API key as a server would (the `shop` fixture in conftest.py is one)."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from tests.gateway.helpers import Person


def png(size: tuple[int, int] = (96, 128), color: tuple[int, int, int] = (200, 150, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


class Integrator:
    """A person with an API key, calling /v1 as a server would."""

    def __init__(self, person: Person, **key_options: Any) -> None:
        self.person = person
        response = person.post("/api-keys", json={"name": "shop", **key_options})
        assert response.status_code == 201, response.get_json()
        self.created = response.get_json()
        self.key: str = self.created["key"]
        self.client = person.app.test_client()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def run(self, inputs: dict[str, Any] | None = None, **body: Any) -> Any:
        payload = {"model_name": "tryon-v1.6", "inputs": {**self.images(), **(inputs or {})}, **body}
        return self.client.post("/v1/run", json=payload, headers=self.headers)

    def images(self) -> dict[str, str]:
        return {"model_image": data_url(png()), "garment_image": data_url(png(color=(20, 40, 200)))}

    def status(self, prediction_id: str) -> Any:
        return self.client.get(f"/v1/status/{prediction_id}", headers=self.headers)

    def cancel(self, prediction_id: str) -> Any:
        return self.client.post(f"/v1/cancel/{prediction_id}", headers=self.headers)
