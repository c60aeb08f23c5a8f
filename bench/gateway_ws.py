"""Gateway WebSocket benchmark: memory per idle socket, open rate, and push latency beside logins.

    .venv/bin/python bench/gateway_ws.py                                 # 1k/5k/10k sockets, 100/500/2000 pushes/s
    .venv/bin/python bench/gateway_ws.py --steps 1000 5000 10000 50000   # needs `ulimit -Hn` >= 51000
    .venv/bin/python bench/gateway_ws.py --steps 2000 --rates 500 --rounds 2 --seconds 3

Starts the gateway under gunicorn (gateway/gunicorn.conf.py, ONE worker process) against a
real Redis (REDIS_URL, under a private key prefix deleted afterwards) and a throw-away SQLite
database with one user per socket (the first with a real cost-12 password, for logins).
Client processes (bench/gateway_ws_client.py: gevent, a minimal WebSocket client that answers pings; up to 15,000
sockets each, spread over 127.0.0.1-4 for client ports) open the sockets in steps, each
socket with its own user's token, and wait for each `ready`. At every step the worker's RSS
is read from /proc: memory per socket = (RSS - RSS before any socket) / sockets, and the
time the step's new sockets took to open. Then, with every socket open, completions are
published as notify does (XADD + PUBLISH) at each rate, each to one random user, carrying
the publish time; the clients record when each arrives. Each rate runs alone (the baseline)
and beside --logins logins per second (POST /user/login, bcrypt cost 12), --rounds times:
the figures are the median and range of the rounds. Output: a table, and as the last line
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench password 1"  # bench.gateway_common.PASSWORD


# =============================================================================== the parent


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Clients:
    """Client processes, each holding up to PER_CLIENT sockets (one descriptor each)."""

    PER_CLIENT = 15_000

    def __init__(self, tokens: list[str], port: int, concurrency: int, work: Path) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.open_counts: list[int] = []
        for index, start in enumerate(range(0, len(tokens), self.PER_CLIENT)):
            path = work / f"tokens-{index}.txt"
            path.write_text("\n".join(tokens[start : start + self.PER_CLIENT]))
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("gateway_ws_client.py")),
                        "--tokens",
                        str(path),
                        "--port",
                        str(port),
                        "--concurrency",
                        str(max(1, concurrency // 2)),
                    ],
                    cwd=REPO,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            self.open_counts.append(0)

    def _ask(self, proc: subprocess.Popen[str], command: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()

    def _answer(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("a bench client exited")
        return dict(json.loads(line))

    def open_more(self, count: int) -> dict[str, Any]:
        """Open `count` more sockets, spread over the clients with room; all at once."""
        asked = []
        for index, proc in enumerate(self.procs):
            room = self.PER_CLIENT - self.open_counts[index]
            take = min(room, count)
            if take > 0:
                self._ask(proc, f"open {take}")
                asked.append((index, proc, take))
                count -= take
        total = {"opened": 0, "failed": 0, "seconds": 0.0, "errors": {}}
        for index, proc, take in asked:
            answer = self._answer(proc)
            self.open_counts[index] += take
            total["opened"] += answer["opened"]
            total["failed"] = total["failed"] + answer["failed"]
            total["seconds"] = max(total["seconds"], answer["seconds"])
            total["errors"].update(answer["errors"])
        return total

    def report(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"latencies": [], "messages": 0, "closed": 0, "pings": 0}
        for proc in self.procs:
            self._ask(proc, "report")
        for proc in self.procs:
            answer = self._answer(proc)
            merged["latencies"] += answer["latencies"]
            for key in ("messages", "closed", "pings"):
                merged[key] += answer[key]
        return merged

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    self._ask(proc, "quit")
                    proc.wait(timeout=30)
                except Exception:
                    proc.kill()


class Logins:
    """POST /user/login at a fixed rate from a thread, recording each answer's latency."""

    def __init__(self, base: str, email: str, rate: float) -> None:
        import threading

        self.base, self.email, self.rate = base, email, rate
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        import threading

        def one() -> None:
            import requests

            started = time.perf_counter()
            try:
                response = requests.post(
                    f"{self.base}/user/login", json={"email": self.email, "password": PASSWORD}, timeout=60
                )
                ok = response.status_code == 200
            except Exception:  # counted
                ok = False
            if ok:
                self.latencies.append(time.perf_counter() - started)
            else:
                self.failures += 1

        def pace() -> None:
            began = time.perf_counter()
            i = 0
            while not self._stop.is_set():
                delay = began + i / self.rate - time.perf_counter()
                if delay > 0 and self._stop.wait(delay):
                    break
                thread = threading.Thread(target=one, daemon=True)  # a slow answer never delays the next
                thread.start()
                self._threads.append(thread)
                i += 1

        self._pacer = threading.Thread(target=pace, daemon=True)
        self._pacer.start()

    def stop(self, wait_s: float = 30.0) -> None:
        """Stop pacing; wait up to `wait_s` in all for the logins in flight (late ones are not counted)."""
        self._stop.set()
        self._pacer.join()
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def publish_for(
    redis_client: Any, prefix: str, users: list[tuple[str, str, str]], rate: float, seconds: float
) -> tuple[int, float]:
    """Completions as notify publishes them (XADD + PUBLISH, one round trip), each to a random user."""
    stream, channel = f"{prefix}proteus:notifications", f"{prefix}events:job_done"
    total = int(rate * seconds)
    interval = 1.0 / rate
    started = time.perf_counter()
    for i in range(total):
        delay = started + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        user_id = random.choice(users)[0]
        message = {
            "job_id": str(uuid.uuid4()),
            "job_type": "try_on",
            "status": "done",
            "user_id": user_id,
            "vton_id": None,
            "result_s3_key": None,
            "error": None,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "bench_sent_at": time.time(),
        }
        text = json.dumps(message)
        pipe = redis_client.pipeline(transaction=False)
        pipe.xadd(stream, {"user_id": user_id, "message": text}, maxlen=10_000, approximate=True)
        pipe.publish(channel, text)
        pipe.execute()
    return total, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[1_000, 5_000, 10_000],
        help="socket counts at which memory is measured (e.g. 1000 5000 10000 50000)",
    )
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0, 2000.0], help="completions/s")
    parser.add_argument("--logins", type=float, default=5.0, help="logins/s in the runs beside pushes (0: none)")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long each push run publishes")
    parser.add_argument("--rounds", type=int, default=3, help="push runs per figure (median and range)")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--heartbeat", type=float, default=25.0, help="WS_HEARTBEAT_S")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    import redis

    from bench.gateway_common import Gateway, make_users, show, spread
    from bench.gateway_ws_client import raise_fd_limit

    fd_limit = raise_fd_limit()
    steps = sorted(set(args.steps))
    # The gateway holds one descriptor per socket and cannot raise its hard limit itself.
    possible = [n for n in steps if n + 500 <= fd_limit]
    skipped = [n for n in steps if n not in possible]
    rows: list[tuple[str, object]] = ProgressRows()
    result: dict[str, Any] = {"cpus": os.cpu_count(), "fd_limit": fd_limit, "rounds": args.rounds}
    gateway = Gateway(
        redis_url=args.redis_url,
        extra_env={"WS_HEARTBEAT_S": str(args.heartbeat), "GUNICORN_WORKER_CONNECTIONS": "1000"},
    )
    redis_client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    clients = None
    try:
        t0 = time.monotonic()
        users = make_users(gateway.database_url, max(possible or [1]), gateway.secret)
        gateway.start()
        rss_before = gateway.rss_mb()
        rows += [
            ("setup (users, migrate, start)", f"{time.monotonic() - t0:.1f} s"),
            ("worker RSS before sockets", f"{rss_before:.1f} MB"),
        ]
        result["rss_mb_before_sockets"] = round(rss_before, 1)
        clients = Clients([token for _, _, token in users], gateway.port, args.concurrency, gateway.work)
        open_now = 0
        for step in possible:
            opened = clients.open_more(step - open_now)
            time.sleep(1.0)  # let the worker settle
            open_now += opened["opened"]
            rss = gateway.rss_mb()
            per_socket_kb = (rss - rss_before) * 1024 / max(open_now, 1)
            rate = opened["opened"] / max(opened["seconds"], 1e-9)
            result[f"sockets_{step}"] = {
                "open": open_now,
                "rss_mb": round(rss, 1),
                "kb_per_socket": round(per_socket_kb, 2),
                "opened_per_s": round(rate, 1),
                "open_seconds": round(opened["seconds"], 2),
                "failed": opened["failed"],
            }
            rows.append(
                (
                    f"{step:,} sockets: RSS / per socket",
                    f"{rss:.1f} MB / {per_socket_kb:.2f} KB ({open_now} open, {opened['failed']} failed)",
                )
            )
            rows.append((f"  opening the last {opened['opened']:,}", f"{opened['seconds']:.1f} s ({rate:.0f}/s)"))
            if opened["errors"]:
                rows.append(("  errors", json.dumps(opened["errors"])[:200]))
        for step in skipped:
            rows.append(
                (
                    f"{step:,} sockets",
                    (
                        f"not run: this machine's descriptor limit is {fd_limit} per process "
                        f"(raise the hard limit, `ulimit -Hn`, to run it)"
                    ),
                )
            )
            result[f"sockets_{step}"] = {"skipped": f"fd limit {fd_limit}"}
        health = requests_get_json(f"{gateway.base}/health")
        rows.append(("gateway /health websockets", health.get("websockets")))

        email = users[0][1]
        received_so_far = 0
        for rate in args.rates:
            for logins in sorted({0.0, args.logins}):
                p50s, p99s, rates, login_p50s, lost = [], [], [], [], 0
                for _ in range(args.rounds):
                    pacer = Logins(gateway.base, email, logins) if logins else None
                    if pacer:
                        pacer.start()
                    sent, elapsed = publish_for(redis_client, gateway.prefix, users, rate, args.seconds)
                    time.sleep(1.0)  # the last ones in flight
                    if pacer:
                        pacer.stop()
                        login_p50s.append(percentile([x * 1000 for x in pacer.latencies], 50))
                    report = clients.report()
                    latencies_ms = [x * 1000 for x in report["latencies"]]
                    lost += sent - (report["messages"] - received_so_far)
                    received_so_far = report["messages"]
                    p50s.append(percentile(latencies_ms, 50))
                    p99s.append(percentile(latencies_ms, 99))
                    rates.append(sent / elapsed)
                key = f"push_{int(rate)}_per_s" + (f"_with_{logins:g}_logins_per_s" if logins else "")
                result[key] = {
                    "p50_ms": spread(p50s),
                    "p99_ms": spread(p99s),
                    "sent_per_s": spread(rates, 1),
                    "lost": lost,
                    "sockets": open_now,
                }
                label = f"push at {rate:g}/s" + (f" + {logins:g} logins/s" if logins else " (baseline)")
                extra = f", login p50 {show(spread(login_p50s), ' ms')}" if logins else ""
                rows.append(
                    (
                        label,
                        (
                            f"p50 {show(spread(p50s), ' ms')}, p99 {show(spread(p99s), ' ms')}, "
                            f"sent {show(spread(rates, 1), '/s')}, lost {lost}{extra}"
                        ),
                    )
                )
                if logins:
                    result[key]["login_p50_ms"] = spread(login_p50s)
        result["rss_mb_after_push"] = round(gateway.rss_mb(), 1)
        rows.append(("worker RSS after the push runs", f"{result['rss_mb_after_push']} MB"))
        from bench.gateway_common import print_table

        print_table(
            f"Proteus gateway WebSocket bench ({os.cpu_count()} CPUs, one gunicorn worker, Redis "
            f"{args.redis_url}; median (min-max) of {args.rounds} runs)",
            rows,
            result,
        )
        return 0
    finally:
        if clients is not None:
            clients.stop()
        gateway.stop()
        redis_client.close()


class ProgressRows(list):  # type: ignore[type-arg]
    """The table's rows, each also written to stderr as it is measured (a long run shows progress)."""

    def append(self, row: Any) -> None:
        print(f"  {row[0]}: {row[1]}", file=sys.stderr, flush=True)
        super().append(row)

    def __iadd__(self, rows: Any) -> Self:
        for row in rows:
            self.append(row)
        return self


def requests_get_json(url: str) -> dict[str, Any]:
    import requests

    return dict(requests.get(url, timeout=60).json())


if __name__ == "__main__":
    raise SystemExit(main())
