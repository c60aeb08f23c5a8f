"""The tailor stage: garment cut-outs, garment categories and person masks.

Model side: `parsing` (HumanParser), `loading` (TailorModelConfig, load_parser),
`geometry` (masks, cut-outs, checks; pure numpy/PIL). This module holds the storage keys
of tailor assets and imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import re

from shared.contracts.fields import CATEGORIES

__all__ = ["ASSET_KINDS", "CATEGORIES", "asset_key", "content_hash"]
ASSET_KINDS: tuple[str, ...] = ("cutout", "mask")
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


def content_hash(data: bytes) -> str:
    """sha256 of the uploaded bytes, lowercase hex: the cache key of everything derived."""
    return hashlib.sha256(data).hexdigest()


def asset_key(user_id: str, content_hash: str, kind: str, category: str | None = None) -> str:
    """Storage key of a tailor asset.

    >>> asset_key("u1", "ab" * 32, "cutout")
    'outputs/tailor/u1/abababababababababababababababababababababababababababababababab-cutout.png'
    >>> asset_key("u1", "ab" * 32, "cutout", "lower")[-18:]
    'b-cutout-lower.png'
    >>> asset_key("u1", "ab" * 32, "mask", "upper")[-17:]
    'ab-mask-upper.png'
    """
    from shared.errors import BadRequest

    if not _USER_ID.match(user_id or ""):
        raise BadRequest(f"user id must be 1-128 letters, digits, '-' or '_', got {user_id!r}", field="userid")
    if not _HASH.match(content_hash or ""):
        raise BadRequest(f"content hash must be 64 lowercase hex digits, got {content_hash!r}", field="hash")
    if kind == "cutout":
        # No category: the cut-out of the category the photo was classified as ("auto").
        if category is None:
            return f"outputs/tailor/{user_id}/{content_hash}-cutout.png"
        if category not in CATEGORIES:
            raise BadRequest(
                f"a cut-out category must be one of {', '.join(CATEGORIES)}, got {category!r}", field="category"
            )
        return f"outputs/tailor/{user_id}/{content_hash}-cutout-{category}.png"
    if kind == "mask":
        if category not in CATEGORIES:
            raise BadRequest(
                f"a mask key needs a category ({', '.join(CATEGORIES)}), got {category!r}", field="category"
            )
        return f"outputs/tailor/{user_id}/{content_hash}-mask-{category}.png"
    raise BadRequest(f"asset kind must be one of {', '.join(ASSET_KINDS)}, got {kind!r}", field="kind")
