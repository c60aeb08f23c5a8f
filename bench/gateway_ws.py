"""Gateway WebSocket benchmark: memory per idle socket, open rate, and push latency beside logins.

    .venv/bin/python bench/gateway_ws.py                                 # 1k/5k/10k sockets, 100/500/2000 pushes/s
    .venv/bin/python bench/gateway_ws.py --steps 1000 5000 10000 50000   # needs `ulimit -Hn` >= 51000
    .venv/bin/python bench/gateway_ws.py --steps 2000 --rates 500 --rounds 2 --seconds 3

Starts the gateway under gunicorn (gateway/gunicorn.conf.py; --workers, by default the
gateway's own one per usable core: the sockets spread over them) against a
real Redis (REDIS_URL, under a private key prefix deleted afterwards) and a throw-away SQLite
database with one user per socket (the first with a real cost-12 password, for logins).
Client processes (bench/gateway_ws_client.py: gevent, a minimal WebSocket client that answers pings; up to 15,000
sockets each, spread over 127.0.0.1-4 for client ports) open the sockets in steps, each
socket with its own user's token, and wait for each `ready`. At every step the workers' RSS
(added up) is read from /proc: memory per socket = (RSS - RSS before any socket) / sockets,
and the
time the step's new sockets took to open. Then, with every socket open, completions are
published as notify does (XADD + PUBLISH) at each rate, each to one random user, carrying
the publish time; the clients record when each arrives. Each rate runs alone (the baseline)
and beside --logins logins per second (POST /user/login, bcrypt cost 12), --rounds times:
the figures are the median and range of the rounds. Output: a table, and as the last line
one JSON object.

With --original, the original gateway's replica (bench/original_gateway/server.js: Node.js,
`ws`; see its README.md) is measured first, alone, with the same tokens, client and steps:
its node process's RSS per socket (read the same way), the time each step took to open, a
check that a completion published for a user reaches that user's socket on it, and its push
latency at each rate (no logins: the replica has no login route). It is stopped before our
gateway starts, so neither process disturbs the other's figures; rows and keys end in
`(original replica)` / `_original`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.gateway_common import add_workers_argument
from bench.gateway_ws_load import (
    Clients,
    Logins,
    ProgressRows,
    percentile,
    publish_for,
    requests_get_json,
)

if TYPE_CHECKING:
    from bench.gateway_common import Gateway

# =============================================================================== the parent


def open_steps(
    clients: Clients,
    steps: list[int],
    rss: Callable[[], float],
    rss_before: float,
    rows: list[tuple[str, object]],
    result: dict[str, Any],
    suffix: str = "",
) -> int:
    """Open the sockets step by step; at each, the process's RSS per socket and the step's
    open time (keys `sockets_N` + suffix). Returns how many are open."""
    label = " (original replica)" if suffix else ""
    open_now = 0
    for step in steps:
        opened = clients.open_more(step - open_now)
        time.sleep(1.0)  # let the server settle
        open_now += opened["opened"]
        now = rss()
        per_socket_kb = (now - rss_before) * 1024 / max(open_now, 1)
        rate = opened["opened"] / max(opened["seconds"], 1e-9)
        result[f"sockets_{step}{suffix}"] = {
            "open": open_now,
            "rss_mb": round(now, 1),
            "kb_per_socket": round(per_socket_kb, 2),
            "opened_per_s": round(rate, 1),
            "open_seconds": round(opened["seconds"], 2),
            "failed": opened["failed"],
        }
        rows.append(
            (
                f"{step:,} sockets{label}: RSS / per socket",
                f"{now:.1f} MB / {per_socket_kb:.2f} KB ({open_now} open, {opened['failed']} failed)",
            )
        )
        rows.append((f"  opening the last {opened['opened']:,}", f"{opened['seconds']:.1f} s ({rate:.0f}/s)"))
        if opened["errors"]:
            rows.append(("  errors", json.dumps(opened["errors"])[:200]))
    return open_now


def push_runs(
    clients: Clients,
    redis_client: Any,
    prefix: str,
    users: list[tuple[str, str, str]],
    args: argparse.Namespace,
    rows: list[tuple[str, object]],
    result: dict[str, Any],
    *,
    login_base: str | None,
    received_so_far: int = 0,
    suffix: str = "",
) -> None:
    """Completions at each rate, alone and (with `login_base`) beside --logins logins/s."""
    from bench.gateway_common import show, spread

    label = " (original replica)" if suffix else ""
    email = users[0][1]
    sockets = sum(clients.open_counts)
    for rate in args.rates:
        for logins in sorted({0.0, args.logins if login_base else 0.0}):
            p50s, p99s, rates, login_p50s, lost = [], [], [], [], 0
            for _ in range(args.rounds):
                pacer = Logins(login_base, email, logins) if logins and login_base else None
                if pacer:
                    pacer.start()
                sent, elapsed = publish_for(redis_client, prefix, users, rate, args.seconds)
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
            key = f"push_{int(rate)}_per_s" + (f"_with_{logins:g}_logins_per_s" if logins else "") + suffix
            result[key] = {
                "p50_ms": spread(p50s),
                "p99_ms": spread(p99s),
                "sent_per_s": spread(rates, 1),
                "lost": lost,
                "sockets": sockets,
            }
            what = f"push at {rate:g}/s" + (f" + {logins:g} logins/s" if logins else " (baseline)") + label
            extra = f", login p50 {show(spread(login_p50s), ' ms')}" if logins else ""
            rows.append(
                (
                    what,
                    (
                        f"p50 {show(spread(p50s), ' ms')}, p99 {show(spread(p99s), ' ms')}, "
                        f"sent {show(spread(rates, 1), '/s')}, lost {lost}{extra}"
                    ),
                )
            )
            if logins:
                result[key]["login_p50_ms"] = spread(login_p50s)


def original_phase(
    gateway: Gateway,
    users: list[tuple[str, str, str]],
    steps: list[int],
    redis_client: Any,
    args: argparse.Namespace,
    rows: list[tuple[str, object]],
    result: dict[str, Any],
) -> None:
    """The same steps and pushes on the original gateway's replica, alone (ours not started yet)."""
    from bench.original_replica import OriginalGateway

    original = OriginalGateway(gateway)
    clients = None
    try:
        original.start()
        rss_before = original.rss_mb()
        rows.append(("replica (node) RSS before sockets", f"{rss_before:.1f} MB"))
        result["rss_mb_before_sockets_original"] = round(rss_before, 1)
        clients = Clients([token for _, _, token in users], original.port, args.concurrency, gateway.work)
        open_steps(clients, steps, original.rss_mb, rss_before, rows, result, "_original")
        # One completion for the first user must reach that user's socket on the replica.
        publish_for(redis_client, gateway.prefix, users[:1], 10.0, 0.1)
        time.sleep(1.0)
        received = clients.report()["messages"]
        if received != 1:
            raise SystemExit(f"the replica delivered {received} of 1 published completion:\n{original.log_tail()}")
        rows.append(("replica: a published completion reached its user", "yes"))
        push_runs(
            clients, redis_client, gateway.prefix, users, args, rows, result,
            login_base=None, received_so_far=received, suffix="_original",
        )  # fmt: skip
        result["rss_mb_after_push_original"] = round(original.rss_mb(), 1)
    finally:
        if clients is not None:
            clients.stop()
        original.stop()


def compare(steps: list[int], rows: list[tuple[str, object]], result: dict[str, Any]) -> None:
    """Ours beside the replica at the last step: memory per socket and the step's open time."""
    ours, theirs = result.get(f"sockets_{steps[-1]}", {}), result.get(f"sockets_{steps[-1]}_original", {})
    if "kb_per_socket" not in ours or "kb_per_socket" not in theirs:
        return
    result["ours_vs_original"] = {
        "sockets": steps[-1],
        "kb_per_socket": [ours["kb_per_socket"], theirs["kb_per_socket"]],
        "open_seconds_last_step": [ours["open_seconds"], theirs["open_seconds"]],
    }
    rows.append(
        (
            f"{steps[-1]:,} sockets, ours / original replica",
            (
                f"{ours['kb_per_socket']:.2f} / {theirs['kb_per_socket']:.2f} KB per socket; the last step opened in "
                f"{ours['open_seconds']:.1f} / {theirs['open_seconds']:.1f} s"
            ),
        )
    )


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
    parser.add_argument("--original", action="store_true", help="the same on the original gateway's replica first")
    add_workers_argument(parser)
    args = parser.parse_args()

    import redis

    from bench.gateway_common import Gateway, make_users
    from bench.gateway_ws_client import raise_fd_limit

    fd_limit = raise_fd_limit()
    steps = sorted(set(args.steps))
    # The gateway holds one descriptor per socket and cannot raise its hard limit itself; its
    # workers share the sockets (each takes what it accepts: a margin of a quarter for an
    # uneven share).
    possible = [n for n in steps if n * 1.25 / args.workers + 500 <= fd_limit]
    skipped = [n for n in steps if n not in possible]
    rows: list[tuple[str, object]] = ProgressRows()
    result: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "fd_limit": fd_limit,
        "rounds": args.rounds,
    }
    gateway = Gateway(
        redis_url=args.redis_url,
        extra_env={
            "WS_HEARTBEAT_S": str(args.heartbeat),
            "GUNICORN_WORKER_CONNECTIONS": "1000",
            "WEB_CONCURRENCY": str(args.workers),
        },
    )
    redis_client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    clients = None
    try:
        t0 = time.monotonic()
        users = make_users(gateway.database_url, max(possible or [1]), gateway.secret)
        original_rows: list[tuple[str, object]] = ProgressRows()
        setup = "setup (users, migrate, start)"
        if args.original and possible:
            original_phase(gateway, users, possible, redis_client, args, original_rows, result)
            t0, setup = time.monotonic(), "setup (start)"
        gateway.start()
        rss_before = gateway.rss_mb()
        rows += [
            (setup, f"{time.monotonic() - t0:.1f} s"),
            (f"RSS of the {args.workers} worker(s) before sockets", f"{rss_before:.1f} MB"),
        ]
        result["rss_mb_before_sockets"] = round(rss_before, 1)
        clients = Clients([token for _, _, token in users], gateway.port, args.concurrency, gateway.work)
        open_steps(clients, possible, gateway.rss_mb, rss_before, rows, result)
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
        rows.append(("gateway /health websockets (every worker)", health.get("websockets")))
        push_runs(clients, redis_client, gateway.prefix, users, args, rows, result, login_base=gateway.base)
        result["rss_mb_after_push"] = round(gateway.rss_mb(), 1)
        rows.append(("workers' RSS after the push runs", f"{result['rss_mb_after_push']} MB"))
        table = list(rows) + list(original_rows)  # printed as measured already
        if original_rows:
            compare(possible, table, result)
        from bench.gateway_common import print_table

        print_table(
            f"Proteus gateway WebSocket bench ({os.cpu_count()} CPUs, {args.workers} gunicorn worker(s), Redis "
            f"{args.redis_url}; median (min-max) of {args.rounds} runs)",
            table,
            result,
        )
        return 0
    finally:
        if clients is not None:
            clients.stop()
        gateway.stop()
        redis_client.close()


if __name__ == "__main__":
    raise SystemExit(main())
