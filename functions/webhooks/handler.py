"""The webhooks function: POST a finished public-API job's status body to its webhook URL.

One message per job: its `webhook-id` is `msg_<job id>`, whatever the redeliveries, and it
is signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
HMAC-SHA256 with the owner's secret, by the `standardwebhooks` package). A 2xx answer marks
the delivery done, and later copies of the request are skipped; anything else raises a
retryable error, so the stream runner retries with backoff and, after RUNNER_MAX_ATTEMPTS,
dead-letters the entry (the delivery row then says failed). Each attempt is counted on the
delivery row that GET /v1/webhooks/deliveries lists. The URL goes through the same SSRF
guard as image URLs (shared/safe_http.py) and redirects are not followed.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook

from shared.config import Settings
from shared.db.models import Job, User, WebhookDelivery, utcnow
from shared.db.session import session_scope
from shared.errors import ClientError, TransientError
from shared.events import event_data
from shared.predictions import status_body
from shared.safe_http import SafeClient
from shared.stage import Dependencies, Stage
from shared.webhooks import message_id, new_webhook_secret

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 64 * 1024  # of the receiver's answer, which is read and dropped
EVENT_NAMES = {"completed": "prediction.completed", "failed": "prediction.failed", "canceled": "prediction.canceled"}


class WebhookFailed(TransientError):
    """The receiver did not answer 2xx (or could not be reached): the runner retries."""

    code = "webhook_failed"


class WebhooksFunction(Stage):
    source = "/proteus/functions/webhooks"

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhooksFunction:
        return cls(Dependencies.from_settings(settings))

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        data = event_data(event)
        job_id, url = data["job_id"], data["url"]
        msg_id = message_id(job_id)
        with session_scope(self.sessions, write=True) as session:
            job = session.get(Job, job_id)
            user = session.get(User, data["user_id"])
            if job is None or user is None or job.user_id != user.id:
                log.warning("webhook for unknown job %s; dropped", job_id)
                return None
            delivery = session.get(WebhookDelivery, msg_id)
            if delivery is None:
                delivery = WebhookDelivery(
                    id=msg_id, user_id=user.id, job_id=job_id, url=url, status="pending", attempts=0
                )
                session.add(delivery)
                session.flush()
            if delivery.status == "delivered":
                log.info("webhook %s was delivered already; not sent again", msg_id)
                return None
            if not user.webhook_secret:
                user.webhook_secret = new_webhook_secret()
            secret = user.webhook_secret
            body = status_body(job, self.storage, self.settings)
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == msg_id)
                .values(attempts=WebhookDelivery.attempts + 1)
            )
            attempts = delivery.attempts + 1
        body["event"] = EVENT_NAMES.get(body["status"], "prediction." + body["status"])
        payload = json.dumps(body, separators=(",", ":"))
        timestamp = datetime.now(UTC)
        signature = Webhook(secret).sign(msg_id, timestamp, payload)
        headers = {
            "content-type": "application/json",
            "user-agent": "Proteus-Webhooks/1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
        }
        client = SafeClient(
            field="webhook_url",
            timeout_s=self.settings.webhook_timeout_s,
            allowed_hosts=self.settings.api_fetch_allowed_hosts,
        )
        status: int | None = None
        try:
            response = client.request(
                "POST",
                url,
                body=payload.encode(),
                headers=headers,
                max_bytes=MAX_RESPONSE_BYTES,
                follow_redirects=False,
            )
            status = response.status
            error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
        except ClientError as exc:  # unsafe URL, unreachable, too slow, too long an answer
            error = exc.message
        self._record(msg_id, status, error, attempts)
        if error is not None:
            raise WebhookFailed(f"webhook {msg_id} to {url}: {error} (attempt {attempts})")
        return None

    def _record(self, msg_id: str, status: int | None, error: str | None, attempts: int) -> None:
        values: dict[str, Any] = {"last_status_code": status, "last_error": error}
        if error is None:
            values |= {"status": "delivered", "delivered_at": utcnow()}
        elif attempts >= self.settings.runner_max_attempts:
            values["status"] = "failed"  # the runner dead-letters it after this attempt
        with session_scope(self.sessions, write=True) as session:
            session.execute(update(WebhookDelivery).where(WebhookDelivery.id == msg_id).values(**values))
