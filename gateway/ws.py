"""`WS /ws`: job notifications pushed to the sockets of their user.

Protocol (see docs in gateway/openapi.py, `x-websocket`):

- Connect to `/ws?token=<ws-token or login token>` (or send the token as `Authorization:
  Bearer` or the `token` cookie). A missing, bad, expired or revoked token: the socket is
  accepted and at once closed with code 4401. A cookie-authenticated socket from a foreign
  Origin is closed with 4403.
- Optional `?last_event_id=<stream id>`: first the user's completion messages after that
  id are replayed from the notification stream (at most Settings.ws_replay_limit, the most
  recent ones), then live messages follow, with no duplicates.
- Then the server sends `{"event": "ready", "user_id", "replayed", "truncated"}`.
- Messages are forwarded exactly as notify published them: completions
  `{"job_id", "job_type", "status", "user_id", "vton_id", "result_s3_key", "error",
  "finished_at", "event_id"}` and progress `{"event": "progress", "job_id", "vton_id",
  "user_id", "step", "steps"}`. What the client sends is ignored.
- The server pings every Settings.ws_heartbeat_s; a socket that misses the pong or fails a
  send is closed and dropped.

One `Hub` per process holds the sockets by user id, and one listener thread subscribes to
the notification channel and hands each message to the sockets of its user only. Every
gateway replica subscribes, so any replica reaches the sockets it holds. If the
subscription breaks, the listener resubscribes and replays from the stream what it missed.

The handshake, authentication and replay run in the `/ws` request, served in front of
Flask by gateway/ws_handshake.py; then the socket leaves the WSGI server for the process's
one `SocketLoop` (gateway/wsloop.py), which sends, pings and reads for every socket
without a thread or greenlet each. No compression is offered (permessage-deflate would
keep ~300 KB of zlib state per socket). A slow client never holds up the others: its
frames wait in its own queue, and past `MAX_OUTBOX` it is closed (1008).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from typing import Any

from flask import Blueprint, Response

from gateway import resources
from gateway.wsloop import Connection, SocketLoop
from shared.config import Settings
from shared.errors import BadRequest
from shared.observability.metrics import WEBSOCKETS_OPEN
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM, prefixed

log = logging.getLogger("proteus.gateway.ws")
bp = Blueprint("ws", __name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_UNAVAILABLE = 1011
CLOSE_TOO_SLOW = 1008
MAX_MESSAGE_SIZE = 4096  # what a client may send in one frame (it is ignored anyway)
MAX_OUTBOX = 1000  # messages waiting for one slow socket before it is dropped
_HUB_LOCK = threading.Lock()
STREAM_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
READ_CHUNK = 1000
CATCH_UP_MAX = 10_000


def stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Hub:
    """The sockets of this process by user, and the one thread that feeds them from Redis."""

    def __init__(
        self, redis_client: Any, *, prefix: str = "", replay_limit: int = 100, heartbeat_s: float = 25.0
    ) -> None:
        self.redis = redis_client
        self.loop = SocketLoop(
            heartbeat_s=heartbeat_s, max_message_size=MAX_MESSAGE_SIZE, max_pending=MAX_OUTBOX, on_close=self.unregister
        )
        self.channel = prefixed(NOTIFICATION_CHANNEL, prefix)
        self.stream = prefixed(NOTIFICATION_STREAM, prefix)
        self.replay_limit = replay_limit
        self._by_user: dict[str, set[Connection]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._pubsub: Any = None  # the listener's subscription (tests break it on purpose)
        self._last_id: str | None = None  # newest stream id this process has seen
        self._caught_up: set[str] = set()  # ids delivered by the latest catch-up (skip if live)
        self.delivered = 0

    # -- sockets -------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        with self._lock:
            self._by_user.setdefault(conn.user_id, set()).add(conn)
        WEBSOCKETS_OPEN.inc()

    def unregister(self, conn: Connection) -> None:
        with self._lock:
            conns = self._by_user.get(conn.user_id)
            if conns is not None and conn in conns:
                conns.discard(conn)
                WEBSOCKETS_OPEN.dec()
                if not conns:
                    del self._by_user[conn.user_id]

    def socket_count(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._by_user.values())

    def dispatch(self, text: str) -> None:
        """Hand one published message to the sockets of its user."""
        try:
            message = json.loads(text)
            user_id = message["user_id"]
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring a malformed notification: %.200s", text)
            return
        event_id = message.get("event_id")
        if isinstance(event_id, str) and STREAM_ID.match(event_id):
            if event_id in self._caught_up:
                return
            self._note_id(event_id)
        else:
            event_id = None
        self._deliver(str(user_id), text, event_id)

    def _deliver(self, user_id: str, text: str, event_id: str | None) -> None:
        with self._lock:
            conns = tuple(self._by_user.get(user_id, ()))
        for conn in conns:
            self.loop.push(conn, text, event_id)
        self.delivered += len(conns)

    def _note_id(self, event_id: str) -> None:
        if self._last_id is None or stream_id_key(event_id) > stream_id_key(self._last_id):
            self._last_id = event_id

    # -- the stream ------------------------------------------------------------------------

    def _entries_after(self, after: str, limit: int) -> list[tuple[str, dict[str, str]]]:
        """Up to `limit` stream entries after id `after`, oldest first."""
        out: list[tuple[str, dict[str, str]]] = []
        start = "(" + after
        while len(out) < limit:
            chunk = self.redis.xrange(self.stream, min=start, max="+", count=min(READ_CHUNK, limit - len(out)))
            if not chunk:
                break
            out.extend(chunk)
            start = "(" + chunk[-1][0]
        return out

    def replay(self, user_id: str, after: str) -> tuple[list[tuple[str, str]], bool]:
        """The user's completions after stream id `after`: ([(event_id, message)], truncated).

        At most `replay_limit`, the most recent; truncated is True when older ones were left
        out or when the stream no longer holds `after` itself (trimmed by the cap, or the
        history was lost): what came between is unknown, so the client must refetch.
        """
        found: deque[tuple[str, str]] = deque(maxlen=max(1, self.replay_limit))
        seen = 0
        truncated = not self.redis.xrange(self.stream, min=after, max=after, count=1)
        for entry_id, fields in self._entries_after(after, CATCH_UP_MAX):
            if fields.get("user_id") != user_id:
                continue
            seen += 1
            found.append((entry_id, _with_event_id(fields.get("message", "{}"), entry_id)))
        if seen > len(found):
            truncated = True
        return list(found), truncated

    def _catch_up(self) -> None:
        """After resubscribing: deliver what was added to the stream since the last id seen."""
        assert self._last_id is not None
        delivered: set[str] = set()
        for entry_id, fields in self._entries_after(self._last_id, CATCH_UP_MAX):
            user_id = fields.get("user_id", "")
            delivered.add(entry_id)
            self._note_id(entry_id)
            with self._lock:
                wanted = user_id in self._by_user
            if wanted:
                self._deliver(user_id, _with_event_id(fields.get("message", "{}"), entry_id), entry_id)
        self._caught_up = delivered
        if delivered:
            log.info("caught up %d notification(s) from the stream after resubscribing", len(delivered))

    # -- the listener ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the socket loop and the listener once per process (the first socket does it)."""
        if self._thread is not None:
            return
        self.loop.start()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="proteus-ws-listener", daemon=True)
                self._thread.start()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self.loop.stop()

    def _listen(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            pubsub = None
            try:
                pubsub = self._pubsub = self.redis.pubsub()
                pubsub.subscribe(self.channel)
                while not self._stopping.is_set():  # wait for the server's confirmation
                    confirmation = pubsub.get_message(timeout=0.25)
                    if confirmation and confirmation.get("type") == "subscribe":
                        break
                if self._last_id is None:  # first subscription: nothing was missed yet
                    newest = self.redis.xrevrange(self.stream, max="+", min="-", count=1)
                    self._last_id = newest[0][0] if newest else "0-0"
                else:
                    self._catch_up()
                self._subscribed.set()
                backoff = 0.2
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.25)
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self.dispatch(data.decode("utf-8") if isinstance(data, bytes) else data)
            except Exception as exc:  # Redis went away: resubscribe
                self._subscribed.clear()
                if self._stopping.is_set():
                    break
                log.warning("notification subscription lost (%r); retrying in %.1f s", exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
        self._subscribed.clear()


def _with_event_id(message: str, entry_id: str) -> str:
    try:
        body = json.loads(message)
    except ValueError:
        body = {}
    if isinstance(body, dict):
        body["event_id"] = entry_id
    return json.dumps(body)


def hub_for(res: resources.Resources, settings: Settings) -> Hub:
    """The hub of the app whose resources are `res`, made and started on first use."""
    if res.hub is None:
        with _HUB_LOCK:
            if res.hub is None:
                res.hub = Hub(
                    res.redis,
                    prefix=settings.redis_key_prefix,
                    replay_limit=settings.ws_replay_limit,
                    heartbeat_s=settings.ws_heartbeat_s,
                )
    res.hub.start()
    return res.hub  # type: ignore[no-any-return]


@bp.route("/ws")
def websocket() -> Response:
    """What reaches Flask on /ws is not a handshake: gateway/ws_handshake.py serves those."""
    raise BadRequest("a WebSocket handshake (version 13, with Sec-WebSocket-Key) is expected on /ws")
