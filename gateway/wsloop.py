"""One event loop for every open WebSocket of the process: an idle socket is a few hundred bytes.

The `/ws` handshake (gateway/ws_handshake.py) authenticates and answers in its request; then
the socket leaves the WSGI server and joins this loop: a duplicate of its file descriptor as
a bare, non-blocking `_socket.socket`, one `Connection` (slots only, no buffers while idle)
and one selector registration. No thread, greenlet, request context or per-socket buffer
stays behind, so 10,000 idle sockets cost a few MB instead of two greenlets' stacks each.

The loop runs in one thread (a greenlet under gunicorn's gevent worker, where `selectors`
is gevent's). Other threads hand it work through `attach`, `push` and `close`, which queue a
command and wake it; only the loop writes to a socket, so frames never interleave.

What it does for each socket, as simple-websocket did before:
- sends text frames (what `push` queued; ids the socket's replay already sent are skipped);
- answers pings with pongs and a close with a close; ignores data frames (and closes with
  1009 a frame over `max_message_size`);
- pings every `heartbeat_s`; a socket that has not answered the previous ping by then is
  closed (1011) and dropped;
- closes with 1008 a socket that lets more than `max_pending` messages pile up unsent.

Hooks for metrics (ops): `on_close(conn)` runs in the loop when a socket is dropped, and
`stats()` answers open / attached / pending counts.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from gateway.wsframes import (
    CLOSE_NORMAL,
    CLOSE_TOO_BIG,
    CLOSE_TOO_SLOW,
    CLOSE_UNANSWERED,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    close_frame,
    frame,
    parse_frame,
    tag,
    tagged_id,
    untag,
)
from shared.observability.metrics import PUSH_LATENCY

log = logging.getLogger("proteus.gateway.ws")

HEARTBEAT_SLICE = 2000  # sockets pinged per loop turn, so a heartbeat never stalls pushes


class Connection:
    """One socket of one user. Every field but `user_id` belongs to the loop."""

    __slots__ = ("awaiting_pong", "done", "fd", "inbuf", "pending", "replayed", "sock", "state", "user_id")

    def __init__(self, user_id: str, sock: Any = None, done: threading.Event | None = None) -> None:
        self.user_id = user_id
        self.sock = sock
        self.fd = -1
        self.pending: deque[bytes] | None = None  # frames not yet written (None: nothing waits)
        self.inbuf: bytes = b""
        self.awaiting_pong = False
        self.replayed: frozenset[str] | None = None
        self.state = 0  # 0: handshaking (messages wait), 1: attached, 2: closed, 3: closing (close frame queued)
        self.done = done  # set when closed (a server that must keep its request open waits on it)


class SocketLoop:
    """The sockets of this process and the one loop that serves them."""

    def __init__(
        self,
        *,
        heartbeat_s: float,
        max_message_size: int = 4096,
        max_pending: int = 1000,
        on_close: Callable[[Connection], None] | None = None,
    ) -> None:
        self.heartbeat_s = heartbeat_s
        self.max_message_size = max_message_size
        self.max_pending = max_pending
        self.on_close = on_close
        self._commands: deque[tuple[int, Connection, Any]] = deque()
        self._woken = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector: selectors.BaseSelector | None = None
        self._conns: set[Connection] = set()
        self._round: list[Connection] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._lock = threading.Lock()

    # -- from any thread ------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="proteus-ws-loop", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def attach(self, conn: Connection, replayed: Iterable[str] = ()) -> None:
        """Serve `conn` (its handshake, replay and ready message are written)."""
        self._command(0, conn, frozenset(replayed) or None)

    def push(self, conn: Connection, text: str, event_id: str | None) -> None:
        self._command(1, conn, (text, event_id, time.perf_counter()))

    def close(self, conn: Connection, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        self._command(2, conn, (code, reason))

    def stats(self) -> dict[str, int]:
        return {"sockets": len(self._conns), "commands_queued": len(self._commands)}

    def _command(self, op: int, conn: Connection, arg: Any) -> None:
        self._commands.append((op, conn, arg))
        if not self._woken:
            self._woken = True
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop is awake anyway

    # -- the loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        next_beat = time.monotonic() + self.heartbeat_s
        try:
            while not self._stopping:
                timeout = 0.0 if self._round else max(0.0, next_beat - time.monotonic())
                for key, mask in self._selector.select(timeout):
                    conn = key.data
                    if conn is None:
                        self._drain_wake()
                        continue
                    if mask & selectors.EVENT_READ:
                        self._read(conn)
                    if mask & selectors.EVENT_WRITE and conn.state in (1, 3):
                        self._flush(conn)
                self._run_commands()
                if not self._round and time.monotonic() >= next_beat:
                    self._round = list(self._conns)
                    next_beat = time.monotonic() + self.heartbeat_s
                if self._round:
                    self._heartbeat_slice()
        except Exception:  # pragma: no cover - a bug here would orphan every socket: log it loudly
            log.exception("the WebSocket loop failed")
            raise
        finally:
            for conn in list(self._conns):
                self._drop(conn, close=(1001, "server shutting down"))
            self._selector.close()

    def _drain_wake(self) -> None:
        # Drain first, then clear the flag: a command queued after the clear sends a new byte,
        # one queued before it is run by the `_run_commands` that follows.
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._woken = False

    def _run_commands(self) -> None:
        commands = self._commands
        while commands:
            op, conn, arg = commands.popleft()
            if conn.state >= 2:
                continue
            if op == 1:
                text, event_id, queued = arg
                if conn.state == 1 and event_id is not None and conn.replayed and event_id in conn.replayed:
                    continue
                self._send(conn, frame(OP_TEXT, text.encode("utf-8")), event_id)
                PUSH_LATENCY.observe(time.perf_counter() - queued)  # notification in hand to frame on its socket
            elif op == 0:
                self._attach(conn, arg)
            else:
                self._drop(conn, close=arg)

    def _attach(self, conn: Connection, replayed: frozenset[str] | None) -> None:
        assert self._selector is not None
        conn.replayed = replayed
        conn.fd = conn.sock.fileno()
        self._selector.register(conn.fd, selectors.EVENT_READ, conn)
        self._conns.add(conn)
        conn.state = 1
        waiting, conn.pending = conn.pending, None
        if waiting and len(waiting) > self.max_pending:
            self._drop(conn, close=(CLOSE_TOO_SLOW, "too slow: messages were dropped; reconnect with last_event_id"))
            return
        for data in waiting or ():  # what was pushed during the handshake, minus the replay
            event_id = tagged_id(data)
            if event_id is not None and replayed and event_id in replayed:
                continue
            self._send(conn, untag(data))

    def _send(self, conn: Connection, data: bytes, event_id: str | None = None) -> None:
        if conn.state == 0:  # still handshaking: keep it (tagged with its id, for the replay check)
            if conn.pending is None:
                conn.pending = deque()
            if len(conn.pending) <= self.max_pending:  # one more than fits: closed at attach
                conn.pending.append(tag(data, event_id))
            return
        if conn.pending:
            if len(conn.pending) >= self.max_pending:
                self._drop(
                    conn, close=(CLOSE_TOO_SLOW, "too slow: messages were dropped; reconnect with last_event_id")
                )
                return
            conn.pending.append(data)
            return
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(conn)
            return
        if sent < len(data):
            conn.pending = deque([data[sent:]])
            self._watch(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _flush(self, conn: Connection) -> None:
        pending = conn.pending
        while pending:
            data = pending[0]
            try:
                sent = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn)
                return
            if sent < len(data):
                pending[0] = data[sent:]
                return
            pending.popleft()
        conn.pending = None
        if conn.state == 3:  # the close frame is out
            self._drop(conn)
            return
        self._watch(conn, selectors.EVENT_READ)

    def _watch(self, conn: Connection, events: int) -> None:
        assert self._selector is not None
        try:
            self._selector.modify(conn.fd, events, conn)
        except (KeyError, ValueError, OSError):
            self._drop(conn)

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(8192)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        if conn.state != 1:  # closing: what the client still sends is dropped
            return
        buffer = conn.inbuf + data if conn.inbuf else data
        while conn.state == 1:
            parsed = parse_frame(buffer, self.max_message_size)
            if parsed is None:
                break
            opcode, payload, used = parsed
            buffer = buffer[used:]
            if opcode < 0:  # too big
                self._drop(conn, close=(CLOSE_TOO_BIG, "message too big"))
                return
            if opcode == OP_PING:
                self._send(conn, frame(OP_PONG, payload))
            elif opcode == OP_PONG:
                conn.awaiting_pong = False
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NORMAL
                self._drop(conn, close=(code if 1000 <= code < 5000 else CLOSE_NORMAL, ""))
                return
            # data frames: the protocol ignores what clients send
        conn.inbuf = buffer

    def _heartbeat_slice(self) -> None:
        ping = frame(OP_PING, b"")
        batch, self._round = self._round[:HEARTBEAT_SLICE], self._round[HEARTBEAT_SLICE:]
        for conn in batch:
            if conn.state == 3:  # its close frame never went out in a whole heartbeat
                self._drop(conn)
                continue
            if conn.state != 1:
                continue
            if conn.awaiting_pong:
                self._drop(conn, close=(CLOSE_UNANSWERED, "no pong"))
            else:
                conn.awaiting_pong = True
                self._send(conn, ping)

    def _drop(self, conn: Connection, close: tuple[int, str] | None = None) -> None:
        """Close and forget `conn`; a close frame waits behind frames still queued for it."""
        if conn.state == 2:
            return
        if close is not None and conn.state == 1 and conn.pending:
            conn.pending.append(close_frame(*close))  # sent when the client reads; then closed
            conn.state = 3
            self._closed(conn)
            return
        closing = conn.state == 3
        registered = conn.state in (1, 3)
        conn.state = 2
        self._conns.discard(conn)
        if registered and self._selector is not None:
            try:
                self._selector.unregister(conn.fd)
            except (KeyError, ValueError):
                pass
        sock = conn.sock
        if sock is not None:
            if close is not None and not closing:
                try:
                    sock.send(close_frame(*close))  # best effort
                except OSError:
                    pass
            try:
                sock.close()
            except OSError:
                pass
        conn.pending = None
        conn.inbuf = b""
        if conn.done is not None:
            conn.done.set()
        if not closing:
            self._closed(conn)

    def _closed(self, conn: Connection) -> None:
        if self.on_close is not None:
            try:
                self.on_close(conn)
            except Exception:
                log.exception("on_close hook failed")
