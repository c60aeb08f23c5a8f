"""Signatures for the local backend's presigned URLs (served by `local_http`).

PUT/GET: `/files/<key>?expires=<unix>&ct=<type>&max=<bytes>&sig=<hex>` (GET carries no
`ct`/`max`), where `sig` = HMAC-SHA256(k, "METHOD\\nkey\\nexpires\\nct\\nmax") and k is derived
from the JWT secret, so a URL signed by one process is checked by another.

POST: S3's browser form. `policy` is base64 JSON `{"expiration": ..., "conditions": [...]}`
with `{"key": ...}`, `{"Content-Type": ...}` and `["content-length-range", 1, max]`;
`signature` = HMAC-SHA256(k, policy) in hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import Forbidden
from shared.timestamps import parse_rfc3339

_CONTEXT = b"proteus/storage/local-signed-url/v1"
# Form fields that S3 does not require a policy condition for.
_UNCONDITIONED = {"policy", "signature", "file"}


@dataclass(frozen=True)
class UploadTerms:
    """What a verified upload URL or policy allows."""

    key: str
    content_type: str
    min_bytes: int
    max_bytes: int


class LocalSigner:
    """Signs and checks local presigned URLs and POST policies with one derived key."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a non-empty secret is needed to sign local storage URLs")
        self._key = hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    # -- query-string URLs (PUT and GET) ----------------------------------------------

    def url_params(
        self, method: str, key: str, expires: int, content_type: str = "", max_bytes: int | None = None
    ) -> dict[str, str]:
        """The query parameters of a signed `method` URL for `key`."""
        max_text = "" if max_bytes is None else str(max_bytes)
        params = {"expires": str(expires)}
        if method == "PUT":
            params |= {"ct": content_type, "max": max_text}
        params["sig"] = self._mac(f"{method}\n{key}\n{expires}\n{content_type}\n{max_text}")
        return params

    def check_url(self, method: str, key: str, args: Mapping[str, str], now: float | None = None) -> UploadTerms:
        """The terms of a signed URL; Forbidden if unsigned, tampered with or expired."""
        expires_text, sig = args.get("expires", ""), args.get("sig", "")
        content_type = args.get("ct", "") if method == "PUT" else ""
        max_text = args.get("max", "") if method == "PUT" else ""
        if not expires_text.isdigit() or not sig or (method == "PUT" and not max_text.isdigit()):
            raise Forbidden(f"{method} /files/{key}: the URL is not signed (expires/sig missing or malformed)")
        expected = self._mac(f"{method}\n{key}\n{expires_text}\n{content_type}\n{max_text}")
        if not hmac.compare_digest(expected, sig):
            raise Forbidden(f"{method} /files/{key}: the signature does not match")
        if int(expires_text) < (time.time() if now is None else now):
            raise Forbidden(f"{method} /files/{key}: the URL expired at {int(expires_text)}")
        return UploadTerms(key, content_type, 1, int(max_text) if max_text else 0)

    # -- POST policies ---------------------------------------------------------------

    def policy(self, key: str, content_type: str, max_bytes: int, expires_at: datetime) -> dict[str, str]:
        """The form fields (key, Content-Type, policy, signature) of a POST upload."""
        document = {
            "expiration": expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conditions": [{"key": key}, {"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
        }
        encoded = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
        return {"key": key, "Content-Type": content_type, "policy": encoded, "signature": self._mac(encoded)}

    def check_policy(self, fields: Mapping[str, str], now: datetime | None = None) -> UploadTerms:
        """The terms of a POST form's policy; Forbidden if it is forged, expired or unmet."""
        encoded, signature = fields.get("policy", ""), fields.get("signature", "")
        if not encoded or not signature:
            raise Forbidden("POST /files: the form has no policy or signature field")
        if not hmac.compare_digest(self._mac(encoded), signature):
            raise Forbidden("POST /files: the policy signature does not match")
        try:
            document = json.loads(base64.b64decode(encoded, validate=True))
            expiration = parse_rfc3339(str(document["expiration"]))
            conditions: list[Any] = list(document["conditions"])
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise Forbidden(f"POST /files: the policy is malformed ({exc})") from None
        if expiration < (now or datetime.now(UTC)):
            raise Forbidden(f"POST /files: the policy expired at {document['expiration']}")
        return _apply_conditions(conditions, fields)


def _apply_conditions(conditions: list[Any], fields: Mapping[str, str]) -> UploadTerms:
    """Check every condition against the form; returns the key, type and size range."""
    covered: set[str] = set()
    low, high = 0, 0
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            ((name, value),) = condition.items()
            op, name = "eq", str(name)
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            continue
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with"):
            op, name, value = condition[0], str(condition[1]).lstrip("$"), condition[2]
        else:
            raise Forbidden(f"POST /files: unknown policy condition {condition!r}")
        actual = fields.get(name)
        ok = actual is not None and (actual == value if op == "eq" else actual.startswith(str(value)))
        if not ok:
            raise Forbidden(f"POST /files: field {name!r} is {actual!r}, the policy requires {op} {value!r}")
        covered.add(name)
    extra = [n for n in fields if n not in covered and n not in _UNCONDITIONED and not n.startswith("x-ignore-")]
    if extra:
        raise Forbidden(f"POST /files: form fields {extra} are not allowed by the policy")
    if "key" not in covered or "Content-Type" not in covered or high < 1:
        raise Forbidden("POST /files: the policy must fix the key, the Content-Type and a content-length-range")
    return UploadTerms(fields["key"], fields["Content-Type"], low, high)
