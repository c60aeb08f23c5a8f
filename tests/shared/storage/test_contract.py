"""The storage contract, once, run against both backends (the local disk and S3 on moto's server).

What differs between them (presigned URL mechanics, the local blueprint, S3 batches and
endpoints) stays in test_local.py and test_s3.py.
"""

from __future__ import annotations

import uuid

import pytest

from shared.config import Settings
from shared.errors import BadRequest, NotFound
from shared.storage import storage_from_settings
from shared.storage.base import Storage
from shared.storage.local import LocalStorage
from shared.storage.s3 import S3Storage

PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 200
KEY = "uploads/u1/abc-photo.png"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, settings: Settings) -> Storage:
    if request.param == "local":
        made = storage_from_settings(settings)
        assert isinstance(made, LocalStorage)
        return made
    endpoint = request.getfixturevalue("s3_server")
    s3 = S3Storage(
        f"proteus-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, access_key_id="testing", secret_access_key="testing"
    )
    assert s3.ensure_bucket() is True
    assert s3.ensure_bucket() is False  # idempotent
    return s3


def test_put_get_head_list_delete(storage: Storage) -> None:
    storage.put(KEY, PNG, "image/png")
    storage.put("uploads/u1/b.jpg", b"jpeg", "image/jpeg")
    storage.put("uploads/u10/c.jpg", b"other user", "image/jpeg")

    assert storage.get(KEY) == PNG
    info = storage.head(KEY)
    assert info is not None and (info.size, info.content_type) == (len(PNG), "image/png")
    assert storage.exists(KEY) and not storage.exists("uploads/u1/nope.png")
    assert storage.head("uploads/u1/nope.png") is None
    assert storage.list("uploads/u1/") == ["uploads/u1/abc-photo.png", "uploads/u1/b.jpg"]
    assert storage.list("uploads/u1") == ["uploads/u1/abc-photo.png", "uploads/u1/b.jpg", "uploads/u10/c.jpg"]
    assert storage.list("nothing/") == []

    storage.put(KEY, b"new", "image/webp")  # overwrite replaces bytes and type
    info = storage.head(KEY)
    assert storage.get(KEY) == b"new" and info is not None and info.content_type == "image/webp"
    storage.put(KEY, PNG, "image/png")  # and back: the type the extension implies
    info = storage.head(KEY)
    assert storage.get(KEY) == PNG and info is not None and info.content_type == "image/png"
    storage.put(KEY, b"new", "image/webp")

    storage.delete(KEY)
    storage.delete(KEY)  # deleting what is gone is fine
    assert storage.head(KEY) is None
    with pytest.raises(NotFound, match="abc-photo"):
        storage.get(KEY)
    with pytest.raises(BadRequest):
        storage.put("../escape", b"x", "image/png")
    assert storage.delete_prefix("uploads/u1/") == 1
    assert storage.list("") == ["uploads/u10/c.jpg"]
    if isinstance(storage, LocalStorage):
        assert not (storage.root / "objects" / "uploads" / "u1").exists()  # empty folders pruned


def test_read_start_gives_the_whole_size_and_the_first_bytes(storage: Storage) -> None:
    storage.put(KEY, PNG, "image/png")
    storage.put("uploads/u1/empty.png", b"", "image/png")
    assert storage.read_start(KEY, 8) == (len(PNG), PNG[:8])
    assert storage.read_start(KEY, len(PNG)) == (len(PNG), PNG)
    assert storage.read_start(KEY, 10**6) == (len(PNG), PNG)  # shorter than asked: all of it
    assert storage.read_start("uploads/u1/empty.png", 64) == (0, b"")
    with pytest.raises(NotFound, match="nope"):
        storage.read_start("uploads/u1/nope.png", 10)
    with pytest.raises(NotFound):
        storage.read_start("outputs/weaver", 10)  # a prefix is not an object
    with pytest.raises(BadRequest):
        storage.read_start("../escape", 10)


def test_head_of_a_prefix_is_not_an_object(storage: Storage) -> None:
    storage.put("outputs/weaver/u1/j1.png", PNG, "image/png")
    assert storage.head("outputs/weaver/u1") is None
    with pytest.raises(NotFound):
        storage.get("outputs/weaver")


def test_read_within_a_limit(storage: Storage) -> None:
    storage.put(KEY, PNG, "image/png")
    storage.put("uploads/u1/empty.png", b"", "image/png")
    assert storage.read_within(KEY, len(PNG)) == (len(PNG), PNG)
    assert storage.read_within(KEY, len(PNG) - 1) == (len(PNG), None)  # too big: not read
    assert storage.read_within("uploads/u1/empty.png", 10) == (0, b"")
    with pytest.raises(NotFound, match="nope"):
        storage.read_within("uploads/u1/nope.png", 10)
    with pytest.raises(NotFound):
        storage.read_within("outputs/weaver", 10**6)  # a prefix is not an object
    with pytest.raises(BadRequest):
        storage.read_within("../escape", 10)


def no_leftovers(storage: Storage) -> bool:
    """No object stored (and on disk, no temporary file left)."""
    tmp = storage.root / "tmp" if isinstance(storage, LocalStorage) else None
    return storage.list("") == [] and (tmp is None or not tmp.exists() or list(tmp.iterdir()) == [])


@pytest.mark.parametrize(
    "key", ["/etc/passwd", "../x", "uploads/../../x", "a/./b", "a//b", "a\\b", "a\x00b", "a\nb", "", "dir/"]
)
def test_bad_keys_are_refused_naming_the_key(storage: Storage, key: str) -> None:
    with pytest.raises(BadRequest) as info:
        storage.put(key, b"x", "image/png")
    assert repr(key) in info.value.message
    with pytest.raises(BadRequest):
        storage.presign_download(key)
    assert no_leftovers(storage)


@pytest.mark.parametrize(
    "terms",
    [
        {"content_type": "image/png", "max_bytes": 100, "expires_s": 0},
        {"content_type": "image/png", "max_bytes": 100, "expires_s": 8 * 24 * 3600},
        {"content_type": "image/png", "max_bytes": 0},
        {"content_type": "png", "max_bytes": 100},
        {"content_type": "image/png", "max_bytes": 100, "method": "PATCH"},
    ],
)
def test_presign_refuses_bad_terms(storage: Storage, terms: dict) -> None:
    with pytest.raises(BadRequest):
        storage.presign_upload(KEY, **terms)


def test_delete_prefix_refuses_everything(storage: Storage) -> None:
    storage.put(KEY, PNG, "image/png")
    with pytest.raises(BadRequest):
        storage.delete_prefix("")
    assert storage.exists(KEY)
