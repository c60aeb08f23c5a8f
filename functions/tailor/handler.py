"""The tailor function: garment cut-outs, garment categories and person masks.

A `tailor.requested` event names a garment photo (cut it out and find its category), a
person photo (build the try-on mask for the category), or both. Results are assets keyed
by the content hash of the photo (and the category for masks), so the same photo is
processed once per user and reused. When the request carries `then_weave`, the weave
request is sent on with what tailor found: the category for "auto", the cut-out as the
garment, the mask for the mask-based variant.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from functions.tailor import asset_key, content_hash
from functions.tailor.geometry import garment_cutout, garment_photo_type, person_mask
from functions.tailor.loading import TailorModelConfig, load_parser
from functions.tailor.parsing import HumanParser
from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.contracts.events import (
    StageFailed,
    TailorFailed,
    TailorRequested,
    WeaveRequested,
)
from shared.contracts.tryon import (
    CATEGORY_FOR_AUTO,
    DEFAULT_REQUEST_CATEGORY,
    FASHN_MODEL,
)
from shared.db.models import GarmentAsset, Job
from shared.db.session import session_scope
from shared.errors import ClientError, LicenceRestricted
from shared.images import encode_png, load_image
from shared.observability import tracing
from shared.observability.metrics import MODEL_LOAD_SECONDS, TAILOR_CACHE
from shared.stage import Dependencies, Stage

log = logging.getLogger(__name__)
MODELS_KEY = "proteus:models"


class TailorFunction(Stage):
    """Runs human parsing on garment and person photos; caches what it makes."""

    source = "/proteus/functions/tailor"

    def __init__(self, deps: Dependencies, parser: HumanParser) -> None:
        super().__init__(deps)
        self.parser = parser
        self._lock = threading.Lock()
        smoke = parser.name == "smoke"
        self.info = {
            "model": parser.name,
            "smoke": smoke,
            "warning": "tailor runs the SMOKE model: masks and cut-outs are from random weights" if smoke else None,
        }
        self.redis.hset(self.settings.redis_key_prefix + MODELS_KEY, "tailor", json.dumps(self.info))

    @classmethod
    def from_settings(cls, settings: Settings) -> TailorFunction:
        if settings.commercial:  # the SegFormer parser is licensed for non-commercial use only
            log.warning("COMMERCIAL=true: tailor's parser is off; tailor requests fail with the reason")
            return cls(Dependencies.from_settings(settings), ParserOff())  # type: ignore[arg-type]
        started = time.perf_counter()
        parser = load_parser(TailorModelConfig.from_settings(settings))
        MODEL_LOAD_SECONDS.labels("tailor").set(time.perf_counter() - started)
        return cls(Dependencies.from_settings(settings), parser)

    def readiness(self) -> dict[str, Any]:
        self.check_dependencies()
        return {"ready": True, **self.info}

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        request = TailorRequested.parse(event.get_data())
        data = request.to_data()
        job_id, user_id = request.job_id, request.user_id
        with session_scope(self.sessions, write=True) as session:
            job = session.get(Job, job_id)
            if job is not None and job.status in ("succeeded", "failed"):
                return None
            jobs.mark_running(session, job_id)
        category: str = request.category or DEFAULT_REQUEST_CATEGORY
        result: dict[str, Any] = {
            "job_id": job_id,
            "user_id": user_id,
            "vton_id": data.get("vton_id"),
            "model": self.parser.name,
        }
        photo_type = None
        fashn = (data.get("then_weave") or {}).get("model") == FASHN_MODEL
        try:
            if data.get("garment_key") and fashn and category != "auto":
                # FASHN takes the photo itself: only whether someone wears the garment is needed.
                photo_type = self._photo_type(data["garment_key"])
            elif data.get("garment_key"):
                cutout_key, category, confidence, photo_type = self._garment(user_id, data["garment_key"], category)
                result.update(cutout_key=cutout_key, confidence=confidence)
            if category == "auto":
                category = CATEGORY_FOR_AUTO
            result["category"] = category
            if data.get("person_key"):
                result["mask_key"] = self._mask(user_id, data["person_key"], category)
        except ClientError as exc:
            failure = TailorFailed(**_ids(data), **StageFailed.fields_of(exc))
            return self.publish(t.TAILOR_FAILED, failure.to_data())
        completed = self.publish(t.TAILOR_COMPLETED, result)
        if request.then_weave is not None:
            weave = request.then_weave.to_data()
            weave["category"] = category
            if result.get("mask_key"):
                weave["mask_key"] = result["mask_key"]
            if weave.get("model") == FASHN_MODEL:
                # FASHN takes the photo itself (it masks worn garments with its own parser).
                if weave.get("garment_photo_type", "auto") == "auto" and photo_type is not None:
                    weave["garment_photo_type"] = photo_type
            elif result.get("cutout_key"):
                weave["garment_key"] = result["cutout_key"]
            self.publish(t.WEAVE_REQUESTED, WeaveRequested.parse(weave).to_data())
        return completed

    # -- the two products, each cached by content hash ----------------------------------

    def _garment(self, user_id: str, key: str, category: str) -> tuple[str, str, float, str]:
        """(cut-out key, category, confidence, photo type) for the garment photo at `key`.

        "auto" cuts out the category the photo is classified as; a named category cuts out
        that one's labels, and its confidence is that category's share of the clothing.
        Each is cached separately (category "" is the "auto" one).
        """
        data = self.storage.get(key)
        digest = content_hash(data)
        cache_category = "" if category == "auto" else category
        cached = self._cached(user_id, digest, "cutout", cache_category)
        if cached is not None and (cached.meta or {}).get("photo_type"):
            meta = cached.meta or {}
            return cached.key, meta.get("category") or category, float(cached.confidence or 0.0), meta["photo_type"]
        image = load_image(data, max_pixels=self.settings.max_image_pixels, what="garment photo")
        labels = self._parse(image)
        photo_type = garment_photo_type(labels)
        if cached is not None:  # recorded before photo types were: the cut-out stands
            return (
                cached.key,
                (cached.meta or {}).get("category") or category,
                float(cached.confidence or 0.0),
                photo_type,
            )
        cut = garment_cutout(image, labels, None if category == "auto" else category)
        out_key = asset_key(user_id, digest, "cutout", cache_category or None)
        self.storage.put(out_key, encode_png(cut.image), "image/png")
        self._remember(
            user_id,
            digest,
            "cutout",
            cache_category,
            out_key,
            cut.category,
            cut.confidence,
            {"box": list(cut.box), "photo_type": photo_type},
        )
        return out_key, cut.category, cut.confidence, photo_type

    def _photo_type(self, key: str) -> str:
        """ "model" (worn) or "flat-lay" (product shot) for the garment photo at `key`."""
        image = load_image(self.storage.get(key), max_pixels=self.settings.max_image_pixels, what="garment photo")
        return garment_photo_type(self._parse(image))

    def _mask(self, user_id: str, key: str, category: str) -> str:
        """The try-on mask key for the person photo at `key` and `category`."""
        data = self.storage.get(key)
        digest = content_hash(data)
        cached = self._cached(user_id, digest, "mask", category)
        if cached is not None:
            return cached.key
        image = load_image(data, max_pixels=self.settings.max_image_pixels, what="person photo")
        mask = person_mask(self._parse(image), category)
        out_key = asset_key(user_id, digest, "mask", category)
        self.storage.put(out_key, encode_png(mask), "image/png")
        self._remember(user_id, digest, "mask", category, out_key, category, None, {})
        return out_key

    def _parse(self, image: Image.Image) -> Any:
        with self._lock, tracing.span("tailor parse", attributes={"proteus.pixels": image.width * image.height}):
            return self.parser.parse(image)  # one inference at a time per process

    def _cached(self, user_id: str, digest: str, kind: str, category: str) -> GarmentAsset | None:
        with self.sessions() as session:
            asset = session.scalars(
                select(GarmentAsset).where(
                    GarmentAsset.user_id == user_id,
                    GarmentAsset.content_hash == digest,
                    GarmentAsset.kind == kind,
                    GarmentAsset.category == category,
                )
            ).first()
            if asset is not None and self.storage.exists(asset.key):
                session.expunge(asset)
                TAILOR_CACHE.labels("hit").inc()
                return asset
        TAILOR_CACHE.labels("miss").inc()
        return None

    def _remember(
        self,
        user_id: str,
        digest: str,
        kind: str,
        category: str,
        key: str,
        found: str | None,
        confidence: float | None,
        meta: dict[str, Any],
    ) -> None:
        try:
            with session_scope(self.sessions, write=True) as session:
                session.add(
                    GarmentAsset(
                        user_id=user_id,
                        content_hash=digest,
                        kind=kind,
                        category=category,
                        key=key,
                        confidence=confidence,
                        meta={"category": found, **meta},
                    )
                )
        except IntegrityError:
            log.info("asset %s of %s already recorded (a concurrent or repeated request)", kind, digest[:12])


class ParserOff:
    """Stands in for the parser under COMMERCIAL: every use is refused with the reason."""

    name = "off (commercial)"

    def parse(self, image: Image.Image) -> Any:
        raise LicenceRestricted(
            "tailor's parser (segformer_b2_clothes, NVIDIA SegFormer licence: non-commercial) "
            "is off in this commercial deployment; send a category and no auto choices"
        )


def _ids(data: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": data["job_id"], "user_id": data["user_id"], "vton_id": data.get("vton_id")}
