"""Gateway WebSocket benchmark: idle sockets per process, memory, and push latency.

    .venv/bin/python bench/gateway_ws.py                       # 10,000 sockets, 500 events/s
    .venv/bin/python bench/gateway_ws.py --sockets 2000 --rate 200 --seconds 3
    .venv/bin/python bench/gateway_ws.py --worker-class gthread --threads 2100 --sockets 1000

Starts the gateway under gunicorn (gateway/gunicorn.conf.py, ONE worker process) against a
real Redis (REDIS_URL, default redis://127.0.0.1:6379/0, under a private key prefix that is
deleted afterwards) and a throw-away SQLite database holding one user per socket. A client
process (gevent, a minimal WebSocket client that answers pings) opens N idle sockets on
127.0.0.1, each with its own user's token, and waits for each socket's `ready` message. The
worker's RSS is read from /proc. Then completions are published as notify does (XADD to the
notification stream, PUBLISH on the channel) at a fixed rate, each to one random user and
carrying the publish time; the client records when each arrives. Output: a readable table,
and as the last line one JSON object (sockets, rss_mb, push_p50_ms, push_p99_ms, events_per_s...).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# =============================================================================== the client
# Runs in its own process (`--client`), gevent-patched before anything imports socket.


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
            sock = socket.create_connection(("127.0.0.1", args.port), timeout=60)
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                (f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
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
                    opcode, payload = buffer[0] & 0x0F, buffer[start:start + length]
                    buffer = buffer[start + length:]
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
        except Exception as exc:  # noqa: BLE001 - counted and reported
            counters["failed"] += 1
            errors[repr(exc)[:80]] = errors.get(repr(exc)[:80], 0) + 1

    started = time.monotonic()
    for token in tokens:
        # at most `concurrency` handshakes in flight (open sockets do not count)
        while counters["started"] - counters["ready"] - counters["failed"] - counters["closed"] >= args.concurrency:
            gevent.sleep(0.002)
        counters["started"] += 1
        gevent.spawn(run, token)
    deadline = time.monotonic() + 120
    while counters["ready"] + counters["failed"] + counters["closed"] < len(tokens) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    print(json.dumps({"phase": "connected", "seconds": time.monotonic() - started, **counters, "errors": errors}), flush=True)

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
            if command == "report":
                print(json.dumps({"phase": "report", **counters, "latencies": latencies, "errors": errors}), flush=True)
            elif command == "quit":
                return 0
    return 0


# =============================================================================== the parent


def worker_pid(master: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{master}\n" in status:
                return int(entry.name)
    return None


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        raise WorkerLost(f"the gunicorn worker {pid} is gone") from None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class WorkerLost(RuntimeError):
    """The measured worker process died (killed by gunicorn's timeout, or out of resources)."""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_users(database_url: str, count: int, secret: str) -> list[tuple[str, str]]:
    """`count` users straight into the database; (user id, login token) each."""
    import jwt
    from sqlalchemy import insert

    from shared.db.migrate import upgrade
    from shared.db.models import User, utcnow
    from shared.db.session import make_engine

    upgrade(database_url)
    now = utcnow()
    rows = [{"id": str(uuid.uuid4()), "user_name": f"bench{i}", "email": f"bench{i}@example.com",
             "password_hash": "$2b$04$" + "x" * 53, "token_version": 0, "created_at": now, "updated_at": now}
            for i in range(count)]
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(insert(User), rows)
    engine.dispose()
    issued = int(time.time())
    return [(row["id"], jwt.encode({"sub": row["id"], "userId": row["id"], "ver": 0, "iat": issued,
                                    "exp": issued + 3600, "purpose": "ws"}, secret, algorithm="HS256"))
            for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0, help="completions published per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to publish")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--worker-class", default=None, help="override gateway/gunicorn.conf.py (e.g. gthread)")
    parser.add_argument("--threads", type=int, default=None, help="with --worker-class gthread")
    parser.add_argument("--heartbeat", type=float, default=25.0, help="WS_HEARTBEAT_S")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return client_main(args)

    sys.path.insert(0, str(REPO))
    import redis

    fd_limit = raise_fd_limit()
    if fd_limit < args.sockets + 200:
        print(f"warning: the fd limit is {fd_limit}; {args.sockets} sockets may not fit", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="proteus-bench-ws-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    secret = secrets.token_urlsafe(32)
    database_url = f"sqlite:///{work / 'bench.db'}"
    port = free_port()
    rows: list[tuple[str, object]] = []
    server = client = None
    redis_client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    try:
        t0 = time.monotonic()
        users = make_users(database_url, args.sockets, secret)
        (work / "tokens.txt").write_text("\n".join(token for _, token in users))
        env = dict(os.environ)
        env.update(
            PROTEUS_ENV="development", PROTEUS_DATA_DIR=str(work), DATABASE_URL=database_url,
            REDIS_URL=args.redis_url, REDIS_KEY_PREFIX=prefix, JWT_SECRET=secret, PORT=str(port),
            WEB_CONCURRENCY="1", GUNICORN_WORKER_CONNECTIONS=str(args.sockets + 1000),
            WS_HEARTBEAT_S=str(args.heartbeat), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
        )
        command = [sys.executable, "-m", "gunicorn", "-c", "gateway/gunicorn.conf.py"]
        if args.worker_class:
            command += ["-k", args.worker_class]
        if args.threads:
            command += ["--threads", str(args.threads)]
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=open(work / "gunicorn.log", "wb"),  # noqa: SIM115
                                  stderr=subprocess.STDOUT)
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start:\n" + (work / "gunicorn.log").read_text()[-3000:])
            time.sleep(0.2)
        worker = worker_pid(server.pid)
        assert worker is not None, "no gunicorn worker process found"
        rss_idle_app = rss_mb(worker)
        rows.append(("setup (users, migrate, start)", f"{time.monotonic() - t0:.1f} s"))
        rows.append(("worker class", args.worker_class or "gevent (gateway/gunicorn.conf.py)"))
        rows.append(("worker RSS before sockets", f"{rss_idle_app:.1f} MB"))

        client = subprocess.Popen(
            [sys.executable, __file__, "--client", "--tokens", str(work / "tokens.txt"), "--port", str(port),
             "--concurrency", str(args.concurrency)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert client.stdout is not None and client.stdin is not None
        connected = json.loads(client.stdout.readline())
        time.sleep(1.0)  # let the worker settle
        open_sockets = connected["ready"]
        rss_sockets = rss_mb(worker)
        master_rss = rss_mb(server.pid)
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=30).json()
        rows += [
            ("sockets requested", args.sockets),
            ("sockets open (ready received)", open_sockets),
            ("sockets failed", connected["failed"]),
            ("connect time", f"{connected['seconds']:.1f} s ({open_sockets / max(connected['seconds'], 1e-9):.0f}/s)"),
            ("gateway /health websockets", health.get("websockets")),
            ("worker RSS with sockets", f"{rss_sockets:.1f} MB"),
            ("per socket", f"{(rss_sockets - rss_idle_app) * 1024 / max(open_sockets, 1):.1f} KB"),
            ("master RSS", f"{master_rss:.1f} MB"),
        ]
        if connected["errors"]:
            rows.append(("connect errors", json.dumps(connected["errors"])[:200]))

        # Publish completions as notify does, at a fixed rate, each to one random user.
        stream, channel = f"{prefix}proteus:notifications", f"{prefix}events:job_done"
        total = int(args.rate * args.seconds)
        interval = 1.0 / args.rate
        started = time.perf_counter()
        for i in range(total):
            target = started + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            user_id = random.choice(users)[0]
            message = {"job_id": str(uuid.uuid4()), "job_type": "try_on", "status": "done", "user_id": user_id,
                       "vton_id": None, "result_s3_key": None, "error": None,
                       "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            message["bench_sent_at"] = time.time()
            entry = redis_client.xadd(stream, {"user_id": user_id, "message": json.dumps(message)},
                                      maxlen=10_000, approximate=True)
            redis_client.publish(channel, json.dumps({**message, "event_id": entry}))
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # the last ones in flight
        client.stdin.write("report\n")
        client.stdin.flush()
        report = json.loads(client.stdout.readline())
        latencies_ms = [x * 1000 for x in report["latencies"]]
        rss_after = rss_mb(worker)
        result = {
            "sockets": open_sockets,
            "rss_mb": round(rss_sockets, 1),
            "rss_mb_after_push": round(rss_after, 1),
            "rss_mb_before_sockets": round(rss_idle_app, 1),
            "push_p50_ms": round(percentile(latencies_ms, 50), 2),
            "push_p99_ms": round(percentile(latencies_ms, 99), 2),
            "push_max_ms": round(max(latencies_ms), 2) if latencies_ms else None,
            "events_per_s": round(total / elapsed, 1),
            "events_sent": total,
            "events_received": report["messages"],
            "sockets_closed_during_run": report["closed"],
            "worker_class": args.worker_class or "gevent",
            "cpus": os.cpu_count(),
        }
        rows += [
            ("events published", f"{total} in {elapsed:.2f} s ({result['events_per_s']}/s)"),
            ("events received", report["messages"]),
            ("push latency p50", f"{result['push_p50_ms']} ms"),
            ("push latency p99", f"{result['push_p99_ms']} ms"),
            ("push latency max", f"{result['push_max_ms']} ms"),
            ("worker RSS after pushes", f"{rss_after:.1f} MB"),
            ("sockets closed during the run", report["closed"]),
            ("pings answered by clients", report["pings"]),
        ]
        width = max(len(str(k)) for k, _ in rows)
        print(f"\nProteus gateway WebSocket bench ({os.cpu_count()} CPUs, one gunicorn worker, Redis {args.redis_url})")
        print("-" * (width + 30))
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
        print("-" * (width + 30))
        print(json.dumps(result))
        return 0
    except WorkerLost as exc:
        log_tail = (work / "gunicorn.log").read_text(errors="replace")[-2000:]
        print(f"\n{exc}; gunicorn log:\n{log_tail}")
        print(json.dumps({"sockets": 0, "rss_mb": None, "push_p50_ms": None, "push_p99_ms": None,
                          "events_per_s": None, "error": str(exc), "worker_class": args.worker_class or "gevent"}))
        return 1
    finally:
        if client is not None and client.poll() is None:
            try:
                client.stdin.write("quit\n")  # type: ignore[union-attr]
                client.stdin.flush()  # type: ignore[union-attr]
                client.wait(timeout=20)
            except Exception:  # noqa: BLE001
                client.kill()
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        for key in redis_client.scan_iter(match=f"{prefix}*", count=1000):
            redis_client.delete(key)
        redis_client.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
