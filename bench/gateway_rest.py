"""Gateway REST benchmark: GET /vton (20 rows) and POST /user/login, requests per second and
p50/p99 latency at concurrency 1, 8 and 32, each with its baselines from the same run.

    .venv/bin/python bench/gateway_rest.py                      # SQLite, 3 rounds of 4 s
    .venv/bin/python bench/gateway_rest.py --postgres           # a private PostgreSQL database
    .venv/bin/python bench/gateway_rest.py --rounds 5 --seconds 6 --concurrency 1 8 32
    .venv/bin/python bench/gateway_rest.py --postgres --original   # and the original's replica

Starts the gateway under gunicorn (gateway/gunicorn.conf.py, its default of one worker per usable core; --workers N sets WEB_CONCURRENCY) on a throw-away
database (SQLite, or with --postgres a database created on DATABASE_URL's server and dropped
afterwards) and the real Redis (REDIS_URL) under a private prefix. One user with 20 try-ons;
its password hashed at BCRYPT_ROUNDS (12, the default) and, for the cost-10 row, a second
gateway at BCRYPT_ROUNDS=10 (the original's cost).

The load comes from a separate process (gevent, one keep-alive HTTP connection per
concurrent client) so the client's own work stays out of the server's process. Baselines
of the same run: GET /healthz at the same concurrency (what the server does for a request
that touches nothing), and bcrypt checks per second on every core of this machine in the
bench process (the ceiling for logins). Each figure is the median of the rounds with its
range. Prints a table, then one JSON object (the last line).

With --original (PostgreSQL only, as the original ran), the original gateway's replica
(bench/original_gateway/server.js, Node.js + Express + pg; see its README.md) runs beside
the cost-12 gateway on the same database, secret and Redis: its GET /vton is checked once to
answer the same 20 rows as ours, then loaded with the same token and concurrencies, round by
round interleaved with ours (the order alternating), so both see the same machine state.
Its rows are `GET /vton (original replica), c=N` (`vton_original_cN`) and the ratio of ours
to it (`vton_ours_over_original_cN`, from the medians' req/s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway_common import (
    PASSWORD,
    Gateway,
    add_workers_argument,
    make_users,
    print_table,
    show,
    spread,
)
from bench.original_replica import OriginalGateway, check_same_history

ROWS = 20


# ============================================================================ the load process


def load_main(args: argparse.Namespace) -> int:
    """Run `concurrency` keep-alive clients for `seconds`; print latencies and errors as JSON."""
    from gevent import monkey

    monkey.patch_all()
    import http.client

    import gevent

    spec = json.loads(args.load)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    body = spec.get("body")
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **spec.get("headers", {})}
    stop_at = time.monotonic() + spec["seconds"]

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=60)
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                connection.request(spec["method"], spec["path"], body=payload, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != spec["expect"]:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1
                    continue
                latencies.append(time.perf_counter() - started)
            except Exception as exc:  # counted and reported
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=60)

    began = time.monotonic()
    gevent.joinall([gevent.spawn(client) for _ in range(spec["concurrency"])])
    elapsed = time.monotonic() - began
    print(json.dumps({"latencies": latencies, "errors": errors, "seconds": elapsed}))
    return 0


def run_load(
    port: int,
    method: str,
    path: str,
    concurrency: int,
    seconds: float,
    *,
    expect: int = 200,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec = {
        "port": port,
        "method": method,
        "path": path,
        "concurrency": concurrency,
        "seconds": seconds,
        "expect": expect,
        "body": body,
        "headers": headers or {},
    }
    out = subprocess.run(
        [sys.executable, __file__, "--load", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    lat_ms = sorted(x * 1000 for x in data["latencies"])
    from bench.gateway_common import percentile

    return {
        "rps": len(lat_ms) / data["seconds"],
        "p50_ms": percentile(lat_ms, 50),
        "p99_ms": percentile(lat_ms, 99),
        "max_ms": lat_ms[-1] if lat_ms else float("nan"),
        "errors": data["errors"],
    }


# ============================================================================ baselines


def bcrypt_ceiling(rounds: int, seconds: float = 3.0) -> float:
    """bcrypt checks per second on every core of this machine (threads; bcrypt releases the GIL)."""
    import threading

    import bcrypt

    from gateway.passwords import pool_size

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
    count = [0]
    stop_at = time.monotonic() + seconds

    def work() -> None:
        while time.monotonic() < stop_at:
            bcrypt.checkpw(PASSWORD.encode(), hashed)
            count[0] += 1

    threads = [threading.Thread(target=work) for _ in range(pool_size())]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count[0] / (time.monotonic() - began)


# ============================================================================ the parent


def seed(gateway: Gateway, rounds: int) -> tuple[str, str]:
    """One user with ROWS try-ons: (email, login token)."""
    from sqlalchemy import insert

    from shared.db.models import TryOn
    from shared.db.session import make_engine

    users = make_users(gateway.database_url, 1, gateway.secret, rounds=rounds)
    user_id, email, _ = users[0]
    engine = make_engine(gateway.database_url)
    with engine.begin() as connection:
        connection.execute(
            insert(TryOn),
            [
                {
                    "id": str(uuid.uuid4()),
                    "user_id": user_id,
                    "user_snap": f"uploads/{user_id}/p{i}.png",
                    "uncleaned_outfit": f"uploads/{user_id}/g{i}.png",
                    "category": "upper",
                    "category_requested": "upper",
                    "status": "done",
                }
                for i in range(ROWS)
            ],
        )
    engine.dispose()
    return email, ""


def create_pg_database(server_url: str) -> tuple[str, str]:
    import psycopg

    name = f"proteus_bench_{uuid.uuid4().hex[:8]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    return f"{base}/{name}", name


def drop_pg_database(server_url: str, name: str) -> None:
    import psycopg

    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(
    gateway: Gateway,
    email: str,
    args: argparse.Namespace,
    *,
    logins_only: bool = False,
    original: OriginalGateway | None = None,
) -> dict[str, Any]:
    import requests

    token = requests.post(f"{gateway.base}/user/login", json={"email": email, "password": PASSWORD}, timeout=30).json()[
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    assert len(requests.get(f"{gateway.base}/vton", headers=auth, timeout=30).json()) == ROWS
    if original is not None:
        check_same_history(gateway.base, original.base, auth, ROWS)
    login_body = {"email": email, "password": PASSWORD}
    figures: dict[str, Any] = {}
    for concurrency in args.concurrency:
        rounds: dict[str, list[dict[str, Any]]] = {"vton": [], "vton_original": [], "healthz": [], "login": []}
        for index in range(args.rounds):
            if not logins_only:
                # ours and the replica back to back, the first of the two alternating by round
                ports = [("vton", gateway.port)] + ([("vton_original", original.port)] if original else [])
                for name, port in ports if index % 2 == 0 else ports[::-1]:
                    rounds[name].append(run_load(port, "GET", "/vton", concurrency, args.seconds, headers=auth))
                rounds["healthz"].append(run_load(gateway.port, "GET", "/healthz", concurrency, args.seconds))
            rounds["login"].append(
                run_load(gateway.port, "POST", "/user/login", concurrency, args.seconds, body=login_body)
            )
        for name, results in rounds.items():
            if not results:
                continue
            figures[f"{name}_c{concurrency}"] = {
                "rps": spread([r["rps"] for r in results], 1),
                "p50_ms": spread([r["p50_ms"] for r in results]),
                "p99_ms": spread([r["p99_ms"] for r in results]),
                "max_ms": spread([r["max_ms"] for r in results]),
                "errors": {k: sum(r["errors"].get(k, 0) for r in results) for r in results for k in r["errors"]},
            }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--postgres", action="store_true", help="a private database on DATABASE_URL's server")
    add_workers_argument(parser)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--original", action="store_true", help="GET /vton on the original gateway's replica too (needs --postgres)"
    )
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        return load_main(args)
    if args.original and not args.postgres:
        parser.error("--original needs --postgres: the original gateway ran on PostgreSQL (its replica speaks only pg)")

    pg_server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "rounds": args.rounds,
        "seconds_each": args.seconds,
    }
    rows: list[tuple[str, Any]] = []
    for cost in (12, 10):
        database_url, pg_name = create_pg_database(pg_server) if args.postgres else (None, "")
        gateway = Gateway(
            database_url=database_url,
            redis_url=args.redis_url,
            extra_env={"BCRYPT_ROUNDS": str(cost), "WEB_CONCURRENCY": str(args.workers)},
        )
        original = OriginalGateway(gateway) if args.original and cost == 12 else None
        try:
            email, _ = seed(gateway, cost)
            gateway.start()
            if original is not None:
                original.start()
            figures = measure(gateway, email, args, logins_only=cost != 12, original=original)
            ceiling = bcrypt_ceiling(cost)
        finally:
            if original is not None:
                original.stop()
            gateway.stop()
            if pg_name:
                drop_pg_database(pg_server, pg_name)
        results[f"bcrypt_checks_per_s_cost{cost}"] = round(ceiling, 1)
        for key, value in figures.items():
            label = key if cost == 12 or not key.startswith("login") else key.replace("login", "login_cost10")
            results[label] = value
        rows.append((f"bcrypt checks/s, all cores, cost {cost} (baseline)", f"{ceiling:.1f}"))
    for concurrency in args.concurrency:
        ours, theirs = results.get(f"vton_c{concurrency}"), results.get(f"vton_original_c{concurrency}")
        if ours and theirs:
            ratio = ours["rps"]["median"] / theirs["rps"]["median"] if theirs["rps"]["median"] else float("nan")
            results[f"vton_ours_over_original_c{concurrency}"] = round(ratio, 2)
        for name, what in (
            ("vton", f"GET /vton ({ROWS} rows)"),
            ("vton_original", "GET /vton (original replica)"),
            ("vton_ours_over_original", "GET /vton ours / original replica"),
            ("healthz", "GET /healthz (baseline)"),
            ("login", "POST /user/login, cost 12"),
            ("login_cost10", "POST /user/login, cost 10"),
        ):
            figure = results.get(f"{name}_c{concurrency}")
            if figure is None:
                continue
            if not isinstance(figure, dict):  # the ratio
                rows.append((f"{what}, c={concurrency}", f"{figure:.2f}x the req/s (medians)"))
                continue
            errors = f"  errors {figure['errors']}" if figure["errors"] else ""
            rows.append(
                (
                    f"{what}, c={concurrency}",
                    (
                        f"{show(figure['rps'])} req/s, p50 {show(figure['p50_ms'], ' ms')}, "
                        f"p99 {show(figure['p99_ms'], ' ms')}{errors}"
                    ),
                )
            )
    database = "PostgreSQL" if args.postgres else "SQLite"
    if args.original:
        database += (
            "; the original gateway's replica: Node.js "
            + subprocess.check_output(["node", "--version"], text=True).strip()
        )
    title = (
        f"Proteus gateway REST bench ({os.cpu_count()} CPUs, {args.workers} gunicorn gevent worker(s), {database}, "
        f"median (min-max) of {args.rounds} rounds of {args.seconds:.0f} s)"
    )
    print_table(title, rows, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
