"""Webhook identities shared by the gateway (secrets it shows and rotates) and the webhooks function."""

from __future__ import annotations

import base64
import secrets


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def message_id(job_id: str) -> str:
    """The `webhook-id` of a job's one webhook message, the same on every retry."""
    return f"msg_{job_id}"
