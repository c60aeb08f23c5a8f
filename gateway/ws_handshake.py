"""The `/ws` handshake as plain WSGI, in front of Flask (the protocol: gateway/ws.py).

A handshake does little: it checks a token, reads the user's token version, answers 101 and
hands the socket to the process's `SocketLoop`. Through Flask it cost about twice that
again (a request context, the before/after hooks of metrics, limits, security headers and
CORS, none of which apply to a 101), and the time to open many sockets is this cost.
`WebSocketRoute` sits inside ProxyFix (so forwarded Host and address are already applied)
and serves a well-formed handshake (`GET /ws`, version 13, a key, a socket the server lets
go of) itself, keeping what Flask's hooks did for it: the request counter, a server span
when tracing is on, and errors answered in the gateway's JSON shape. Anything else (a plain
GET, a wrong version) goes on to Flask, whose `/ws` view answers 400.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.wrappers import Request

from gateway import auth, errors, resources
from gateway.ws import CLOSE_FORBIDDEN_ORIGIN, CLOSE_UNAUTHORIZED, CLOSE_UNAVAILABLE, STREAM_ID, hub_for
from gateway.wsframes import close_frame, detach, frame
from gateway.wsloop import Connection
from shared.config import Settings
from shared.errors import Unauthorized
from shared.observability import tracing
from shared.observability.metrics import HTTP_REQUESTS

PATH = "/ws"
ROUTE = "/ws"  # the metrics' route label, as Flask's URL rule names it
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def is_handshake(environ: dict[str, Any]) -> bool:
    """A well-formed WebSocket handshake on /ws with a socket this server lets us take over."""
    return (
        environ.get("PATH_INFO") == PATH
        and environ.get("REQUEST_METHOD") == "GET"
        and environ.get("HTTP_SEC_WEBSOCKET_VERSION") == "13"
        and bool(environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip())
        and ("gunicorn.socket" in environ or "werkzeug.socket" in environ)
    )


class WebSocketRoute:
    """WSGI middleware: serves `/ws` handshakes for `app`, passes every other request to `inner`."""

    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.app = app
        self.inner = inner

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not is_handshake(environ):
            return self.inner(environ, start_response)
        req = Request(environ, populate_request=False)
        span = _start_span(req) if tracing.enabled() else None
        status = 101
        try:
            serve(self.app, req)
        except Exception as exc:  # nothing was sent yet: answer as the gateway answers errors
            error = errors.error_for(exc, "GET", PATH)
            status = error.status
            with self.app.app_context():  # jsonify writes with the app's JSON provider
                response = errors.error_response(error)
            return response(environ, start_response)
        finally:
            HTTP_REQUESTS.labels(ROUTE, "GET", str(status)).inc()
            if span is not None:
                tracing.end_span(span[0], span[1], status)
        return _handed_over(environ, start_response)


def serve(app: Flask, req: Request) -> None:
    """Authenticate, answer the handshake and hand the socket to the hub (or close it with a
    code: 4401 for a bad token, 4403 for a foreign cookie Origin, 1011 without notifications)."""
    environ = req.environ
    raw = environ.get("gunicorn.socket") or environ["werkzeug.socket"]
    settings: Settings = app.config["PROTEUS_SETTINGS"]
    res = resources.resources_of(app)
    user_id, code = _authenticate(res, settings, req)
    handshake = _handshake(environ["HTTP_SEC_WEBSOCKET_KEY"])
    if user_id is None:
        reason = "Unauthorized" if code == CLOSE_UNAUTHORIZED else "Origin not allowed"
        raw.sendall(handshake + close_frame(code, reason))
        return
    hub = hub_for(res, settings)
    if not hub.wait_subscribed(timeout=5.0):
        raw.sendall(handshake + close_frame(CLOSE_UNAVAILABLE, "notifications unavailable; try again"))
        return
    done = None if "gunicorn.socket" in environ else threading.Event()
    conn = Connection(user_id, done=done)
    hub.register(conn)  # live messages wait in the loop while the replay is sent
    try:
        out = [handshake]
        replayed: list[str] = []
        truncated = False
        last_event_id = req.args.get("last_event_id", "")
        if STREAM_ID.match(last_event_id):
            entries, truncated = hub.replay(user_id, last_event_id)
            for event_id, text in entries:
                out.append(frame(0x1, text.encode("utf-8")))
                replayed.append(event_id)
        ready = {"event": "ready", "user_id": user_id, "replayed": len(replayed), "truncated": truncated}
        out.append(frame(0x1, json.dumps(ready).encode("utf-8")))
        raw.sendall(b"".join(out))
        conn.sock = detach(raw)
    except OSError:
        conn.state = 2  # the client went away during the replay
        hub.unregister(conn)
        return
    except Exception:
        conn.state = 2  # the replay failed (Redis went away): nothing was sent, an error answer follows
        hub.unregister(conn)
        raise
    hub.loop.attach(conn, replayed)
    if done is not None:
        done.wait()  # a threaded development server: this request holds the connection until it ends


def _authenticate(res: resources.Resources, settings: Settings, req: Request) -> tuple[str | None, int]:
    """(user id, 0) or (None, close code)."""
    token, where = auth.request_token(allow_query=True, of=req)
    if where == "cookie" and token and not _origin_allowed(settings, req):
        return None, CLOSE_FORBIDDEN_ORIGIN
    try:
        with res.read_engine.connect() as connection:  # the token version alone: no session
            return auth.user_id_for_token(connection, settings, token, purposes=(None, auth.WS_PURPOSE)), 0
    except Unauthorized:
        return None, CLOSE_UNAUTHORIZED


def _origin_allowed(settings: Settings, req: Request) -> bool:
    """A cookie only counts from our own origin or a configured frontend (no cross-site hijacking)."""
    origin = req.headers.get("Origin")
    if not origin:
        return True  # not a browser
    if origin in settings.frontend_origins:
        return True
    return urlsplit(origin).netloc == req.host


def _handshake(key: str) -> bytes:
    """The answer to the handshake (no extensions, no subprotocol). It goes out in one write
    with the frames that follow it (close, or the replay and `ready`): one send per socket
    instead of two."""
    digest = hashlib.sha1(key.strip().encode() + WS_GUID).digest()  # RFC 6455 says SHA-1
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {base64.b64encode(digest).decode()}\r\n\r\n"
    ).encode()


def _handed_over(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI return once the socket is served elsewhere: no HTTP response is written."""
    if "gunicorn.socket" in environ:
        raise StopIteration  # gunicorn closes its descriptor; the loop holds a duplicate
    start_response("200 OK", [("Content-Length", "0")])  # werkzeug writes after the close
    return []


def _start_span(req: Request) -> tuple[Any, Any]:
    return tracing.start_span(
        f"GET {ROUTE}",
        carrier={k.lower(): v for k, v in req.headers.items()},
        attributes={"http.request.method": "GET", "http.route": ROUTE},
    )
