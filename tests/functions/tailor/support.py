"""What the tailor handler tests share: the photos, the outcome the documented rule gives
for a label map (`expected_for`), and a tailor request with its user, upload and job."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from functions.tailor.labels import LABELS
from shared import event_types as t
from shared.db.models import GarmentAsset
from shared.images import load_image
from tests.functions.cloudevents_support import Valid, binary_request, post, stream_events, structured_request
from tests.functions.conftest import add_tryon, add_user, function_of, image_bytes, new_id

RESULTS = "proteus:results"
WEAVE = "proteus:weave"
VOTES = {"upper": ("upper-clothes",), "lower": ("pants", "skirt"), "overall": ("dress",)}
ACCESSORIES = ("hat", "sunglasses", "belt", "left-shoe", "right-shoe", "bag", "scarf")
MIN_FRAC = 0.01


def _shirt_on_white() -> bytes:
    image = Image.new("RGB", (96, 128), (255, 255, 255))
    ImageDraw.Draw(image).rectangle((20, 20, 76, 110), fill=(20, 40, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


PHOTOS = {
    "blue": image_bytes((20, 40, 200)),
    "red": image_bytes((200, 30, 30)),
    "shirt-on-white": _shirt_on_white(),
}


@dataclass(frozen=True)
class Expected:
    outcome: str  # "completed" or "failed"
    category: str | None = None
    confidence: float | None = None
    reason: str | None = None


def label_map(app: Flask, photo: bytes) -> np.ndarray:
    settings = app.config["PROTEUS_SETTINGS"]
    return function_of(app).parser.parse(load_image(photo, max_pixels=settings.max_image_pixels))


def count_labels(labels: np.ndarray, names: tuple[str, ...]) -> int:
    return int(np.isin(labels, [LABELS.index(n) for n in names]).sum())


def category_shares(labels: np.ndarray) -> dict[str, float]:
    votes = {c: count_labels(labels, names) for c, names in VOTES.items()}
    total = sum(votes.values())
    return {c: (v / total if total else 0.0) for c, v in votes.items()}


def expected_for(app: Flask, photo: bytes) -> Expected:
    """The outcome of a category "auto" request for `photo`, by the documented rule."""
    labels = label_map(app, photo)
    votes = {c: count_labels(labels, names) for c, names in VOTES.items()}
    total = sum(votes.values())
    floor = MIN_FRAC * labels.size
    if total < floor:
        return Expected(
            "failed", reason="unknown_category" if count_labels(labels, ACCESSORIES) >= floor else "no_garment"
        )
    category = max(VOTES, key=lambda c: votes[c])  # ties: the first of upper, lower, overall
    return Expected("completed", category, votes[category] / total)


class Request:
    """A user, a garment photo uploaded, a try-on with its queued job, and the tailor request."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: Any,
        photo: bytes,
        *,
        user_id: str | None = None,
        category: str = "auto",
        then_weave: bool = False,
    ) -> None:
        self.sessions, self.storage, self.photo = sessions, storage, photo
        self.user_id = user_id or add_user(sessions)
        self.garment_key = f"uploads/{self.user_id}/{new_id()}-garment.jpg"
        self.person_key = f"uploads/{self.user_id}/{new_id()}-person.jpg"
        storage.put(self.garment_key, photo, "image/jpeg")
        self.job_id = new_id()
        self.vton_id, _ = add_tryon(
            sessions, self.user_id, person_key=self.person_key, garment_key=self.garment_key, job_id=self.job_id
        )
        self.data: dict[str, Any] = {
            "job_id": self.job_id,
            "user_id": self.user_id,
            "vton_id": self.vton_id,
            "garment_key": self.garment_key,
            "category": category,
        }
        if then_weave:  # what enqueue sends for category "auto"
            self.data["then_weave"] = {
                "job_id": self.job_id,
                "user_id": self.user_id,
                "vton_id": self.vton_id,
                "person_key": self.person_key,
                "garment_key": self.garment_key,
                "category": "auto",
                "steps": 4,
                "guidance": 2.5,
                "seed": 1234,
                "variant": "maskfree",
                "height": 1024,
                "width": 768,
                "repaint": False,
            }

    @property
    def cutout_key(self) -> str:
        return f"outputs/tailor/{self.user_id}/{hashlib.sha256(self.photo).hexdigest()}-cutout.png"

    def valid(self) -> Valid:
        return Valid(t.TAILOR_REQUESTED, self.data, self.user_id, self.job_id, "job_id")


def send(client, request: Request, mode: str = "binary"):
    build = binary_request if mode == "binary" else structured_request
    return post(client, build(t.TAILOR_REQUESTED, request.data, user_id=request.user_id, subject=request.job_id))


def for_job(redis_client: redis.Redis, prefix: str, stream: str, job_id: str) -> list:
    return [e for _, e in stream_events(redis_client, prefix, stream) if e.get_subject() == job_id]


def assets_of(sessions: sessionmaker[Session], user_id: str) -> list[GarmentAsset]:
    with sessions() as session:
        return list(session.scalars(select(GarmentAsset).where(GarmentAsset.user_id == user_id)))


class ParseCounter:
    """Wraps the app's parser: counts calls and calls through."""

    def __init__(self, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        parser = function_of(app).parser
        original = parser.parse

        def parse(image: Image.Image) -> np.ndarray:
            self.calls += 1
            return original(image)

        monkeypatch.setattr(parser, "parse", parse)
