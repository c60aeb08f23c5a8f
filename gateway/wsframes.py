"""The WebSocket wire format the gateway's socket loop speaks (RFC 6455, server side): frames
out, frames in, and the bare socket a connection becomes when it leaves the WSGI server."""

from __future__ import annotations

import _socket
import os
import struct
from typing import Any

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
CLOSE_TOO_SLOW = 1008
CLOSE_TOO_BIG = 1009
CLOSE_UNANSWERED = 1011


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked (server-to-client) frame."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:120])


def parse_frame(buffer: bytes, max_message_size: int) -> tuple[int, bytes, int] | None:
    """(opcode, unmasked payload, bytes used) of the first whole frame; opcode -1 if too big."""
    if len(buffer) < 2:
        return None
    opcode = buffer[0] & 0x0F
    masked = buffer[1] & 0x80
    size = buffer[1] & 0x7F
    at = 2
    if size == 126:
        if len(buffer) < 4:
            return None
        size, at = struct.unpack("!H", buffer[2:4])[0], 4
    elif size == 127:
        if len(buffer) < 10:
            return None
        size, at = struct.unpack("!Q", buffer[2:10])[0], 10
    if size > max_message_size:
        return -1, b"", len(buffer)
    end = at + (4 if masked else 0) + size
    if len(buffer) < end:
        return None
    payload = buffer[end - size : end]
    if masked:
        mask = buffer[at : at + 4]
        payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if opcode >= OP_CLOSE else b""
    return opcode, payload, end


# Frames pushed during the handshake carry their event id until the replay is known.
def tag(data: bytes, event_id: str | None) -> bytes:
    return (event_id.encode() + b"\n" + data) if event_id else (b"\n" + data)


def tagged_id(data: bytes) -> str | None:
    head = data[: data.index(b"\n")]
    return head.decode() if head else None


def untag(data: bytes) -> bytes:
    return data[data.index(b"\n") + 1 :]


def detach(raw: Any) -> Any:
    """A bare non-blocking socket on a duplicate of `raw`'s descriptor (the server may close `raw`)."""
    fd = os.dup(raw.fileno())
    sock = _socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock
