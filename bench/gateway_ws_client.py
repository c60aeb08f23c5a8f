"""The client side of bench/gateway_ws.py, run as its own process by it (one per 15,000 sockets):

    .venv/bin/python bench/gateway_ws_client.py --tokens FILE --port PORT --concurrency N

Patched by gevent before anything imports socket. It opens one WebSocket per token (a minimal
client that answers pings), spread over 127.0.0.1-4 for client ports, and takes commands on
stdin ("open N", "report", "quit"), answering each with one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import time
from pathlib import Path


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def client_main(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()
    import base64

    import gevent
    import gevent.os

    raise_fd_limit()
    tokens = [line.strip() for line in Path(args.tokens).read_text().splitlines() if line.strip()]
    latencies: list[float] = []
    counters = {"started": 0, "ready": 0, "failed": 0, "closed": 0, "messages": 0, "pings": 0}
    errors: dict[str, int] = {}

    def frame(opcode: int, payload: bytes) -> bytes:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked

    def run(token: str) -> None:
        try:
            host = f"127.0.0.{1 + counters['started'] % 4}"  # 4 addresses: room for 50,000+ client ports
            sock = socket.create_connection((host, args.port), timeout=60)
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                (
                    f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("closed during the handshake")
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
            sock.settimeout(None)
            while True:
                while len(buffer) >= 2:
                    length = buffer[1] & 0x7F
                    start = 2
                    if length == 126:
                        if len(buffer) < 4:
                            break
                        length, start = int.from_bytes(buffer[2:4], "big"), 4
                    elif length == 127:
                        if len(buffer) < 10:
                            break
                        length, start = int.from_bytes(buffer[2:10], "big"), 10
                    if len(buffer) < start + length:
                        break
                    opcode, payload = buffer[0] & 0x0F, buffer[start : start + length]
                    buffer = buffer[start + length :]
                    if opcode == 0x1:
                        now = time.time()
                        message = json.loads(payload)
                        if message.get("event") == "ready":
                            counters["ready"] += 1
                        elif "bench_sent_at" in message:
                            counters["messages"] += 1
                            latencies.append(now - message["bench_sent_at"])
                    elif opcode == 0x9:
                        counters["pings"] += 1
                        sock.sendall(frame(0xA, payload))
                    elif opcode == 0x8:
                        counters["closed"] += 1
                        return
                chunk = sock.recv(65536)
                if not chunk:
                    counters["closed"] += 1
                    return
                buffer += chunk
        except Exception as exc:  # counted and reported
            counters["failed"] += 1
            errors[repr(exc)[:80]] = errors.get(repr(exc)[:80], 0) + 1

    def open_more(count: int) -> None:
        started = time.monotonic()
        opened_before = counters["ready"]
        target = counters["started"] + count
        done_before = counters["ready"] + counters["failed"] + counters["closed"]
        while counters["started"] < min(target, len(tokens)):
            # at most `concurrency` handshakes in flight (open sockets do not count)
            while counters["started"] - counters["ready"] - counters["failed"] - counters["closed"] >= args.concurrency:
                gevent.sleep(0.002)
            token = tokens[counters["started"]]
            counters["started"] += 1
            gevent.spawn(run, token)
        deadline = time.monotonic() + 300
        while (
            counters["ready"] + counters["failed"] + counters["closed"] - done_before < count
            and time.monotonic() < deadline
        ):
            gevent.sleep(0.05)
        print(
            json.dumps(
                {
                    "phase": "connected",
                    "seconds": time.monotonic() - started,
                    "opened": counters["ready"] - opened_before,
                    **counters,
                    "errors": errors,
                }
            ),
            flush=True,
        )

    gevent.os.make_nonblocking(0)
    pending = b""
    while True:
        data = gevent.os.nb_read(0, 4096)  # cooperative: the sockets keep being served meanwhile
        if not data:
            break
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            command = line.decode().strip()
            if command.startswith("open "):
                open_more(int(command.split()[1]))
            elif command == "report":
                print(json.dumps({"phase": "report", **counters, "latencies": latencies, "errors": errors}), flush=True)
                latencies.clear()
            elif command == "quit":
                return 0
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", required=True, help="a file of tokens, one per line")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    return client_main(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
