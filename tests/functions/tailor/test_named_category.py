"""tailor with a named category (known bugs, fixed): the cut-out does not depend on earlier
requests, and the confidence is for the reported category. The parser answers a label map
built here, whatever the smoke weights say."""

from __future__ import annotations

import numpy as np
import pytest
from flask import Flask

from functions.tailor.geometry import garment_cutout
from functions.tailor.labels import LABELS
from shared import event_types as t
from shared.events import event_data
from shared.images import load_image
from tests.functions.cloudevents_support import reply_of
from tests.functions.conftest import function_of
from tests.functions.tailor.support import PHOTOS, Request, category_shares, label_map, send

pytestmark = pytest.mark.redis


@pytest.fixture
def two_cutouts(app: Flask, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A photo whose "upper" and "lower" cut-outs both exist and differ: the parser answers a
    label map built here (a shirt above trousers), whatever the random smoke weights say."""
    photo = PHOTOS["shirt-on-white"]
    image = load_image(photo)
    labels = np.zeros((image.height, image.width), dtype=np.int64)
    labels[20:65, 20:77] = LABELS.index("upper-clothes")
    labels[65:111, 20:77] = LABELS.index("pants")
    monkeypatch.setattr(function_of(app).parser, "parse", lambda _image: labels.copy())
    upper, lower = garment_cutout(image, labels, "upper"), garment_cutout(image, labels, "lower")
    assert upper.box != lower.box
    return photo


def test_cut_out_for_a_named_category_does_not_depend_on_earlier_requests(
    client, sessions, storage, two_cutouts: bytes
) -> None:
    someone = Request(sessions, storage, two_cutouts, category="upper")
    assert reply_of(send(client, someone)).get_type() == t.TAILOR_COMPLETED
    later = Request(sessions, storage, two_cutouts, user_id=someone.user_id, category="lower")
    fresh = Request(sessions, storage, two_cutouts, category="lower")
    later_data = event_data(reply_of(send(client, later)))
    fresh_data = event_data(reply_of(send(client, fresh)))
    assert later_data["category"] == fresh_data["category"] == "lower"
    assert storage.get(later_data["cutout_key"]) == storage.get(fresh_data["cutout_key"])


def test_confidence_is_for_the_reported_category(client, app: Flask, sessions, storage, two_cutouts: bytes) -> None:
    shares = category_shares(label_map(app, two_cutouts))
    request = Request(sessions, storage, two_cutouts, category="upper")
    data = event_data(reply_of(send(client, request)))
    assert data["category"] == "upper"
    assert data["confidence"] == pytest.approx(shares["upper"])
