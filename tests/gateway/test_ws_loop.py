"""The socket loop itself (gateway/wsloop.py): no message twice after a replay, slow readers
closed, pings sent and a client that never answers them dropped."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time

from gateway.wsframes import detach
from gateway.wsloop import Connection, SocketLoop
from tests.gateway.helpers import (
    LiveServer,
    Person,
)
from tests.gateway.ws_support import (
    connect,
    publish_completion,
    receive_json,
    ws_token,
)


class LoopPair:
    """A SocketLoop serving one Connection whose other end (`client`) the test reads."""

    def __init__(self, *, max_pending: int = 1000) -> None:
        server, self.client = socket.socketpair()
        self.loop = SocketLoop(heartbeat_s=60, max_pending=max_pending)
        self.conn = Connection("u1", done=threading.Event())
        self.conn.sock = detach(server)
        server.close()
        self.loop.start()

    def texts(self, until_close: bool = False, timeout: float = 5) -> list[str]:
        """Text payloads (and 'close <code>') received until the socket is quiet or closed."""
        self.client.settimeout(0.5 if not until_close else timeout)
        data = b""
        while True:
            try:
                chunk = self.client.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        out = []
        while len(data) >= 2:
            opcode, size, at = data[0] & 0x0F, data[1] & 0x7F, 2
            if size == 126:
                size, at = int.from_bytes(data[2:4], "big"), 4
            elif size == 127:
                size, at = int.from_bytes(data[2:10], "big"), 10
            payload, data = data[at : at + size], data[at + size :]
            out.append(payload.decode() if opcode == 0x1 else f"close {int.from_bytes(payload[:2], 'big')}")
        return out

    def stop(self) -> None:
        self.loop.stop()
        self.client.close()


def test_live_messages_that_were_replayed_are_not_sent_twice() -> None:
    pair = LoopPair()
    try:
        pair.loop.push(pair.conn, "replayed", "5-0")  # arrives during the handshake
        pair.loop.push(pair.conn, "new", "6-0")
        pair.loop.attach(pair.conn, replayed=["5-0", "7-0"])
        pair.loop.push(pair.conn, "progress", None)
        pair.loop.push(pair.conn, "replayed too", "7-0")  # arrives after the handshake
        assert pair.texts() == ["new", "progress"]
    finally:
        pair.stop()


def test_a_socket_too_slow_to_read_is_closed() -> None:
    pair = LoopPair(max_pending=50)
    try:
        pair.loop.attach(pair.conn)
        big = "x" * 60_000
        for _ in range(400):  # far more than the socket buffers hold, nobody reading
            pair.loop.push(pair.conn, big, None)
        received = pair.texts(until_close=True)  # what was queued, then the close, then the end
        assert received[-1] == "close 1008" and len(received) < 400
        assert pair.conn.done is not None and pair.conn.done.wait(5)
    finally:
        pair.stop()


def _raw_handshake(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    response = b""
    while not response.endswith(b"\r\n\r\n"):  # byte by byte: the first frames may share its packet
        response += sock.recv(1)
    head = response.decode()
    assert head.startswith("HTTP/1.1 101"), head
    assert "permessage-deflate" not in head.lower()  # no per-socket zlib state
    sock.settimeout(5)
    return sock


def _frames(sock: socket.socket, until: float) -> list[int]:
    """Opcodes of the frames received before `until` (or the close)."""
    opcodes: list[int] = []
    buffer = b""
    while time.monotonic() < until:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            header = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if length >= 126:
                if len(buffer) < header:
                    break
                length = int.from_bytes(buffer[2:header], "big")
            if len(buffer) < header + length:
                break
            opcodes.append(buffer[0] & 0x0F)
            buffer = buffer[header + length :]
            if opcodes[-1] == 0x8:  # the close: whatever follows is not a frame (werkzeug's dev
                return opcodes  # server writes an HTTP status line after a WebSocket ends)
    return opcodes


def test_the_server_pings_and_drops_a_client_that_never_answers(make_app) -> None:
    app = make_app(ws_heartbeat_s=0.3)
    server = LiveServer(app)
    try:
        someone = Person(app)
        sock = _raw_handshake(server.port, ws_token(someone))
        sock.settimeout(0.5)
        opcodes = _frames(sock, time.monotonic() + 4)
        assert opcodes[0] == 0x1  # the ready message
        assert 0x9 in opcodes  # a ping
        assert opcodes[-1] == 0x8  # then, no pong having come, the close
        hub = app.extensions["proteus"].hub
        deadline = time.monotonic() + 3
        while hub.socket_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.socket_count() == 0
        sock.close()
    finally:
        server.stop()


def test_a_client_that_answers_pings_stays(make_app) -> None:
    app = make_app(ws_heartbeat_s=0.2)
    server = LiveServer(app)
    try:
        someone = Person(app)
        ws = connect(server, ws_token(someone))  # simple-websocket answers pings itself
        time.sleep(1.0)
        sent = publish_completion(app, someone.id, "j", None, None)
        assert receive_json(ws) == sent
        ws.close()
    finally:
        server.stop()
