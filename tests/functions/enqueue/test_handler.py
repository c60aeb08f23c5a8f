"""enqueue through its CloudEvents app: tryon.requested in, weave.requested (or
tailor.requested, or weave.failed) out, on the reply and on the streams.

Objects must exist, belong to the user and be images; defaults are filled in and the seed
is drawn once per job (the same on redelivery); a job that has moved on is not sent again.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Any

import pytest
import redis
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from functions.enqueue.main import create_app
from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.db.models import Job
from shared.db.session import session_scope
from shared.events import event_data
from shared.images import HEADER_BYTES
from tests.functions.cloudevents_support import (
    INVALID_CASES,
    Invalid,
    Valid,
    binary_request,
    check_invalid,
    check_valid_pair,
    post,
    prefix_entry_count,
    reply_of,
    stream_events,
    structured_request,
)
from tests.functions.conftest import (
    add_tryon,
    add_user,
    dispose_function,
    function_of,
    get_row,
    image_bytes,
    new_id,
)

pytestmark = pytest.mark.redis

WEAVE = "proteus:weave"
TAILOR = "proteus:tailor"
RESULTS = "proteus:results"


@pytest.fixture(scope="module")
def app(module_settings: Settings):
    app = create_app(module_settings)
    yield app
    dispose_function(app)


class World:
    """A user with a person and a garment photo uploaded, and a try-on row."""

    def __init__(self, sessions: sessionmaker[Session], storage: Any, max_upload_bytes: int) -> None:
        self.sessions, self.storage = sessions, storage
        self.max_upload_bytes = max_upload_bytes
        self.user_id = add_user(sessions)
        self.person_key = f"uploads/{self.user_id}/{new_id()}-person.jpg"
        self.garment_key = f"uploads/{self.user_id}/{new_id()}-shirt.jpg"
        storage.put(self.person_key, image_bytes((200, 150, 120)), "image/jpeg")
        storage.put(self.garment_key, image_bytes((20, 40, 200)), "image/jpeg")
        self.vton_id, _ = add_tryon(sessions, self.user_id, person_key=self.person_key, garment_key=self.garment_key)

    def data(self, job_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        data = {
            "job_id": job_id or new_id(),
            "user_id": self.user_id,
            "vton_id": self.vton_id,
            "person_key": self.person_key,
            "garment_key": self.garment_key,
            "category": "upper",
        }
        data.update(overrides)
        return {k: v for k, v in data.items() if v is not None}

    def valid(self, **overrides: Any) -> Valid:
        data = self.data(**overrides)
        return Valid(t.TRYON_REQUESTED, data, self.user_id, data["job_id"], "garment_key")


@pytest.fixture
def world(sessions: sessionmaker[Session], storage: Any, module_settings: Settings) -> World:
    return World(sessions, storage, module_settings.max_upload_bytes)


def send(client, data: dict[str, Any], mode: str = "binary"):
    build = binary_request if mode == "binary" else structured_request
    return post(client, build(t.TRYON_REQUESTED, data, user_id=data["user_id"], subject=data["job_id"]))


def for_job(entries: list, job_id: str) -> list:
    return [event for _, event in entries if event.get_subject() == job_id]


# --------------------------------------------------------------------------- the CloudEvents contract


def test_binary_and_structured_events_are_answered_with_weave_requested(client, world: World) -> None:
    check_valid_pair(client, world.valid(), world.valid(), reply_type=t.WEAVE_REQUESTED)


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.name)
def test_invalid_event_is_refused(
    client, world: World, case: Invalid, redis_client: redis.Redis, module_prefix: str
) -> None:
    valid = world.valid()
    check_invalid(client, case, valid, redis_client, module_prefix)
    assert get_row(world.sessions, Job, valid.data["job_id"]) is None, "an invalid event created a job"


# --------------------------------------------------------------------------- the happy path


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_owned_objects_publish_one_weave_request_with_defaults(
    client, world: World, redis_client: redis.Redis, module_prefix: str, module_settings: Settings, mode: str
) -> None:
    data = world.data(idempotency_key=f"key-{new_id()}")
    before = prefix_entry_count(redis_client, module_prefix)
    reply = reply_of(send(client, data, mode))

    published = for_job(stream_events(redis_client, module_prefix, WEAVE), data["job_id"])
    assert len(published) == 1, "exactly one weave.requested per delivery"
    assert prefix_entry_count(redis_client, module_prefix) == before + 1, "nothing else was published"
    (event,) = published
    assert event.get_type() == reply.get_type() == t.WEAVE_REQUESTED
    assert event_data(event) == event_data(reply)
    assert event.get_subject() == data["job_id"] and event.get_extension("userid") == world.user_id
    weave = event_data(event)
    seed = weave.pop("seed")
    assert isinstance(seed, int) and 0 <= seed <= 0x7FFFFFFF
    assert weave == {
        "job_id": data["job_id"],
        "user_id": world.user_id,
        "vton_id": world.vton_id,
        "person_key": world.person_key,
        "garment_key": world.garment_key,
        "category": "upper",
        "steps": 50,
        "guidance": 2.5,
        "height": 1024,
        "width": 768,
        "repaint": False,
        "variant": module_settings.weave_variant,
        "model": module_settings.weave_default_model,
    }
    job = get_row(world.sessions, Job, data["job_id"])
    assert job.status == "queued" and job.user_id == world.user_id and job.vton_id == world.vton_id
    assert job.idempotency_key == data["idempotency_key"] and job.job_type == "try_on"


def test_given_parameters_are_kept(client, world: World, redis_client: redis.Redis, module_prefix: str) -> None:
    data = world.data(steps=7, guidance=1.5, seed=42, height=512, width=384, repaint=True, category="lower")
    weave = event_data(reply_of(send(client, data)))
    assert (weave["steps"], weave["guidance"], weave["seed"], weave["height"], weave["width"]) == (7, 1.5, 42, 512, 384)
    assert weave["repaint"] is True and weave["category"] == "lower"


def test_redelivery_keeps_the_seed_and_a_job_that_moved_on_is_not_sent_again(
    client, world: World, redis_client: redis.Redis, module_prefix: str
) -> None:
    data = world.data()
    first = event_data(reply_of(send(client, data)))
    # a redelivery while the job is still queued (weave has not picked it up) goes on again ...
    second = event_data(reply_of(send(client, data, "structured")))
    assert second["seed"] == first["seed"], "the drawn seed is the same on every delivery"
    assert second == first
    other = event_data(reply_of(send(client, world.data())))
    assert other["seed"] != first["seed"], "each job draws its own seed"
    assert len(for_job(stream_events(redis_client, module_prefix, WEAVE), data["job_id"])) == 2

    # ... but once the job is running (or finished), a redelivery publishes nothing
    with session_scope(world.sessions, write=True) as session:
        assert jobs.mark_running(session, data["job_id"])
    before = prefix_entry_count(redis_client, module_prefix)
    response = send(client, data)
    assert response.status_code == 202 and response.get_data() == b""
    assert prefix_entry_count(redis_client, module_prefix) == before
    assert get_row(world.sessions, Job, data["job_id"]).status == "running"


def test_category_auto_goes_to_tailor_first(
    client, world: World, redis_client: redis.Redis, module_prefix: str
) -> None:
    data = world.data(category="auto", steps=4)
    reply = reply_of(send(client, data))
    assert reply.get_type() == t.TAILOR_REQUESTED
    published = for_job(stream_events(redis_client, module_prefix, TAILOR), data["job_id"])
    assert len(published) == 1 and event_data(published[0]) == event_data(reply)
    assert for_job(stream_events(redis_client, module_prefix, WEAVE), data["job_id"]) == []
    tailor = event_data(reply)
    assert tailor["garment_key"] == world.garment_key and tailor["category"] == "auto"
    assert "person_key" not in tailor, "the mask-free variant needs no person mask"
    then = tailor["then_weave"]
    assert then["job_id"] == data["job_id"] and then["person_key"] == world.person_key
    assert then["steps"] == 4 and then["guidance"] == 2.5 and isinstance(then["seed"], int)
    assert then["variant"] == "maskfree" and then["category"] == "auto"


# --------------------------------------------------------------------------- refused objects


def _refusal_cases(world: World) -> dict[str, tuple[str, str, bytes | None, str]]:
    """name -> (field, key, bytes to store there or None, error code)."""
    other_user = new_id()
    return {
        "object of another user": (
            "garment_key",
            f"uploads/{other_user}/{new_id()}-shirt.jpg",
            image_bytes((1, 2, 3)),
            "not_found",
        ),
        "missing object": ("person_key", f"uploads/{world.user_id}/{new_id()}-never-uploaded.jpg", None, "not_found"),
        "not an image": (
            "garment_key",
            f"uploads/{world.user_id}/{new_id()}-notes.png",
            b"these are notes",
            "invalid_image",
        ),
        "empty object": ("person_key", f"uploads/{world.user_id}/{new_id()}-empty.jpg", b"", "bad_request"),
        "not an image past the header bytes": (
            "garment_key",
            f"uploads/{world.user_id}/{new_id()}-noise.png",
            random.Random(7).randbytes(HEADER_BYTES + 1000),
            "invalid_image",
        ),
        "too many pixels": (
            "person_key",
            f"uploads/{world.user_id}/{new_id()}-huge.png",
            huge_png_header(),
            "image_too_large",
        ),
        "over the byte limit": (
            "person_key",
            f"uploads/{world.user_id}/{new_id()}-big.jpg",
            b"\xff" * (world.max_upload_bytes + 1),
            "too_large",
        ),
    }


REFUSALS = [
    "object of another user",
    "missing object",
    "not an image",
    "empty object",
    "not an image past the header bytes",
    "too many pixels",
    "over the byte limit",
]


def huge_png_header(width: int = 9000, height: int = 5000) -> bytes:
    """A PNG whose header says width x height, followed by filler (never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + b"\0" * 1000


@pytest.mark.parametrize("name", REFUSALS)
def test_refused_object_ends_as_weave_failed_naming_the_field(
    client, world: World, redis_client: redis.Redis, module_prefix: str, name: str
) -> None:
    field, key, content, code = _refusal_cases(world)[name]
    if content is not None:
        world.storage.put(key, content, "image/png")
    data = world.data(**{field: key})
    reply = reply_of(send(client, data))
    assert reply.get_type() == t.WEAVE_FAILED
    assert reply.get_subject() == data["job_id"] and reply.get_extension("userid") == world.user_id
    failed = event_data(reply)
    assert failed["job_id"] == data["job_id"] and failed["vton_id"] == world.vton_id
    assert failed["retryable"] is False and failed["code"] == code
    assert failed["error"].startswith(f"{field} "), failed["error"]

    results = for_job(stream_events(redis_client, module_prefix, RESULTS), data["job_id"])
    assert [e.get_type() for e in results] == [t.WEAVE_FAILED]
    assert event_data(results[0]) == failed
    assert for_job(stream_events(redis_client, module_prefix, WEAVE), data["job_id"]) == []
    assert for_job(stream_events(redis_client, module_prefix, TAILOR), data["job_id"]) == []


# --------------------------------------------------------------------------- reading only the header


def noisy_jpeg(size: tuple[int, int], **save: Any) -> bytes:
    pixels = random.Random(size[0]).randbytes(size[0] * size[1] * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(buffer, "JPEG", quality=95, **save)
    return buffer.getvalue()


def test_a_large_photo_is_checked_from_its_first_bytes(app, client, world: World, monkeypatch) -> None:
    photo = noisy_jpeg((900, 1200))
    assert len(photo) > 4 * HEADER_BYTES
    world.storage.put(world.person_key, photo, "image/jpeg")

    def whole_read(*args: Any) -> Any:
        raise AssertionError(f"the whole upload was read: {args}")

    storage = function_of(app).storage
    monkeypatch.setattr(storage, "read_within", whole_read)
    monkeypatch.setattr(storage, "get", whole_read)
    reply = reply_of(send(client, world.data()))
    assert reply.get_type() == t.WEAVE_REQUESTED, event_data(reply)


def test_a_header_longer_than_the_first_bytes_is_read_whole(client, world: World) -> None:
    """A JPEG whose ICC profile (several APP2 segments) runs past HEADER_BYTES before its frame header."""
    photo = noisy_jpeg((96, 128), icc_profile=b"\0" * (HEADER_BYTES + 50_000))
    world.storage.put(world.garment_key, photo, "image/jpeg")
    reply = reply_of(send(client, world.data()))
    assert reply.get_type() == t.WEAVE_REQUESTED, event_data(reply)
