"""The gateway's call to the upload-signing stage: a binary-mode `upload.requested` CloudEvent
over HTTP (UPLOAD_SIGNING_URL), its `upload.signed` reply event read back.

Under `make run` the stage listens on 127.0.0.1:8101; on Knative it is the upload-signing
service (kept warm: min-scale 1). When it does not answer, the browser gets a 503 naming it
and tries again itself; nothing here retries.
"""

from __future__ import annotations

from typing import Final

import requests

from shared import event_types as t
from shared.config import Settings
from shared.contracts.events import UploadRequested, UploadSigned
from shared.errors import DependencyUnavailable
from shared.events import event_data, from_http, make_event, source_for, to_http_binary, validate_event
from shared.events.errors import InvalidEvent
from shared.http_errors import from_error_body

SOURCE: Final = source_for("gateway")
CONNECT_TIMEOUT_S: Final = 2.0
READ_TIMEOUT_S: Final = 10.0
WHAT: Final = "upload signing"


def sign_upload(settings: Settings, request: UploadRequested) -> UploadSigned:
    """Ask the upload-signing stage for a presigned upload; its refusal (4xx) is the caller's
    error as it answered it, and its absence is a 503."""
    url = settings.function_url("upload_signing")
    event = make_event(t.UPLOAD_REQUESTED, request.to_data(), source=SOURCE, user_id=request.user_id)
    headers, body = to_http_binary(event)
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    except requests.RequestException as exc:
        raise DependencyUnavailable(
            f"{WHAT} is not answering at {url} ({exc.__class__.__name__}); try again in a moment"
        ) from exc
    if answer.status_code != 200:
        try:
            error_body = answer.json()
        except ValueError:
            error_body = None
        raise from_error_body(answer.status_code, error_body, what=WHAT)
    try:
        reply = from_http(dict(answer.headers), answer.content)
        validate_event(reply)
        if reply.get_type() != t.UPLOAD_SIGNED:
            raise InvalidEvent(f"expected a {t.UPLOAD_SIGNED} reply, got {reply.get_type()!r}", field="type")
        return UploadSigned.parse(event_data(reply))
    except InvalidEvent as exc:
        raise DependencyUnavailable(f"{WHAT} answered with an unusable event: {exc.message}") from exc
