"""Fault injection against `make run`: no try-on lost, stuck or doubled, whatever crashes.

Starts `python -m shared.devstack` (what `make run` runs) on free ports with the smoke
models, signs up two users and submits N try-ons through the public API (presigned
uploads, POST /vton, POST /jobs/weaver with an Idempotency-Key, retried on errors) while
each user's WebSocket collects the completions (reconnecting with `last_event_id`). Meanwhile
it SIGKILLs weave's master and worker, the runner, notify and the gateway at random (each
at most once per `--target-gap-s`), keeps notify frozen (SIGSTOP) for `--outage-s`, kills
the embedded Redis once, and restarts the whole stack once with SIGTERM and once after
SIGKILL. Then it waits for every job to finish and checks, per job, the API against the
socket and the stored result objects. The stack, the users and their sockets are in
bench/chaos_actors.py.

    .venv/bin/python bench/chaos.py [--tryons 100] [--database sqlite|postgres] [--seed 1]

Prints a table, then one JSON object (the last line): submitted, done, failed (by reason),
stuck, duplicate notifications, duplicate result objects, socket/API disagreements,
recovery seconds. Target: done = submitted, stuck = 0, duplicates = 0. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaos_actors import ROOT, TARGETS, Socket, Stack, User


class Chaos:
    """The disruptions, in a thread: random kills plus the scheduled outage and restarts."""

    def __init__(self, stack: Stack, args: argparse.Namespace, rng: random.Random) -> None:
        self.stack, self.args, self.rng = stack, args, rng
        self.events: list[tuple[float, str]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None

    def note(self, what: str) -> None:
        self.events.append((time.monotonic(), what))
        print(f"  [{time.strftime('%H:%M:%S')}] {what}", flush=True)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by main
            self.error = exc
        finally:
            self.done.set()

    def _run(self) -> None:
        span = self.args.chaos_s
        planned = [(0.15 * span, "outage"), (0.4 * span, "redis"), (0.6 * span, "sigterm"), (0.85 * span, "sigkill")]
        schedule = sorted(
            (at, what) for at, what in planned if what not in ("sigterm", "sigkill") or what in self.args.restarts
        )
        start = time.monotonic()
        last_kill: dict[str, float] = {}
        next_kill = start + self.rng.uniform(0.5, 1.5) * self.args.kill_every_s
        while time.monotonic() - start < span or schedule:
            now = time.monotonic()
            if schedule and now - start >= schedule[0][0]:
                getattr(self, f"_{schedule.pop(0)[1]}")()
                next_kill = time.monotonic() + self.args.kill_every_s
                continue
            if now >= next_kill and now - start < span:
                ready = [t for t in TARGETS if now - last_kill.get(t, -1e9) >= self.args.target_gap_s]
                if ready:
                    target = self.rng.choice(ready)
                    if self.stack.signal_all(target, signal.SIGKILL):
                        last_kill[target] = now
                        self.note(f"SIGKILL {target}")
                next_kill = now + self.rng.uniform(0.5, 1.5) * self.args.kill_every_s
            time.sleep(0.2)

    def _outage(self) -> None:
        pids = self.stack.signal_all("functions/notify/gunicorn.conf.py", signal.SIGSTOP)
        self.note(f"notify frozen (SIGSTOP) for {self.args.outage_s:g} s")
        time.sleep(self.args.outage_s)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.note("notify resumed")

    def _redis(self) -> None:
        if self.stack.signal_all("redis", signal.SIGKILL):
            self.note("SIGKILL the embedded Redis")

    def _sigterm(self) -> None:
        code = self.stack.stop(signal.SIGTERM)
        self.note(f"make run stopped with SIGTERM (exit {code})")
        self.note(f"make run started again ({self.stack.start():.0f} s)")

    def _sigkill(self) -> None:
        self.stack.stop(signal.SIGKILL)
        self.note("make run killed with SIGKILL")
        time.sleep(1)
        self.note(f"make run started again ({self.stack.start():.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tryons", type=int, default=100)
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: a fresh database on DATABASE_URL's server, and REDIS_URL's Redis",
    )
    parser.add_argument("--chaos-s", type=float, default=150, help="how long the disruptions go on")
    parser.add_argument("--kill-every-s", type=float, default=10, help="mean time between random kills")
    parser.add_argument("--target-gap-s", type=float, default=40, help="least time between two kills of one target")
    parser.add_argument("--outage-s", type=float, default=30, help="how long notify stays frozen")
    parser.add_argument("--settle-s", type=float, default=400, help="how long to wait for the last jobs")
    parser.add_argument(
        "--restarts",
        default="sigterm,sigkill",
        help="whole-stack restarts to do: sigterm, sigkill, both (default) or none",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, help="keep the logs and data here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.logs or Path(tempfile.mkdtemp(prefix="proteus-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    env, cleanup = chaos_environment(args, work)
    stack = Stack(env, free_port(), work)
    try:
        figures = run(stack, args, rng, work)
    finally:
        stack.stop(signal.SIGTERM)
        cleanup()
    print_report(figures)
    return (
        0
        if figures["done"] == figures["submitted"]
        and not figures["stuck"]
        and not (figures["duplicate_notifications"] or figures["duplicate_result_objects"])
        else 1
    )


def chaos_environment(args: argparse.Namespace, work: Path) -> tuple[dict[str, str], Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        PROTEUS_ENV="test",
        PROTEUS_DATA_DIR=str(work / "var"),
        MODELS_DIR=env.get("MODELS_DIR", str(ROOT / "models")),
        WEAVE_MODEL="smoke",
        TAILOR_MODEL="smoke",
        LOG_LEVEL="WARNING",
        RATE_LIMIT="100000 per minute",
        RUNNER_BACKOFF_S="0.2",
        RUNNER_BACKOFF_MAX_S="2",
        RUNNER_CLAIM_IDLE_MS="5000",
        RUNNER_REQUEST_TIMEOUT_S="60",
        JOB_QUEUED_DEADLINE_S="150",
        JOB_RUNNING_DEADLINE_S="150",
        RECONCILE_INTERVAL_S="5",
        PROGRESS_INTERVAL_S="0.5",
        JWT_SECRET="chaos-" + "c" * 40,
    )
    if args.database == "sqlite":
        return env, lambda: None
    import sqlalchemy as sa

    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    server = "postgresql+psycopg://" + server.split("://", 1)[1]
    name = f"proteus_chaos_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    env["DATABASE_URL"] = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    env["REDIS_URL"] = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    env["REDIS_KEY_PREFIX"] = f"chaos-{uuid.uuid4().hex[:8]}:"

    def cleanup() -> None:
        import redis

        client = redis.Redis.from_url(env["REDIS_URL"])
        for key in client.scan_iter(match=env["REDIS_KEY_PREFIX"] + "*", count=1000):
            client.delete(key)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return env, cleanup


def free_port() -> int:
    from shared.devstack import free_port as pick

    return pick()


def run(stack: Stack, args: argparse.Namespace, rng: random.Random, work: Path) -> dict[str, Any]:
    print(f"make run (logs and data in {work})", flush=True)
    stack.start()
    users = [User(stack.url, "ada"), User(stack.url, "grace")]
    for user in users:
        user.sign_up()
    sockets = [Socket(u) for u in users]
    threads = [threading.Thread(target=s.run, daemon=True) for s in sockets]
    for thread in threads:
        thread.start()
    chaos = Chaos(stack, args, rng)
    chaos_thread = threading.Thread(target=chaos.run, daemon=True)
    started = time.monotonic()
    chaos_thread.start()
    jobs: dict[str, User] = {}
    submitted_at: dict[str, float] = {}
    for n in range(args.tryons):  # spread over the chaos, in two streams of requests
        target = started + args.chaos_s * 0.9 * n / max(1, args.tryons)
        time.sleep(max(0.0, target - time.monotonic()))
        user = users[n % 2]
        asked = time.monotonic()
        job_id = user.submit()
        jobs[job_id], submitted_at[job_id] = user, asked
    chaos_thread.join()
    if chaos.error is not None:
        raise chaos.error
    statuses = settle(jobs, args.settle_s)
    time.sleep(3)  # the last completions reach the sockets
    for s in sockets:
        s.stop.set()
    for thread in threads:
        thread.join(5)
    return figures_of(jobs, submitted_at, statuses, sockets, chaos, work, stack, args)


def settle(jobs: dict[str, User], settle_s: float) -> dict[str, dict[str, Any]]:
    """GET /jobs/<id> until every job has finished, or settle_s have passed."""
    deadline = time.monotonic() + settle_s
    statuses: dict[str, dict[str, Any]] = {}
    while True:
        for job_id, user in jobs.items():
            if statuses.get(job_id, {}).get("status") not in ("succeeded", "failed"):
                statuses[job_id] = user.call("GET", f"/jobs/{job_id}").json()
        if all(s["status"] in ("succeeded", "failed") for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(2)


def recovery_seconds(
    events: list[tuple[float, str]], submitted_at: dict[str, float], finished_at: dict[str, float]
) -> list[float]:
    """Per disruption with work outstanding: seconds until the next job completed after it."""
    found = []
    for at, _what in events:
        outstanding = [j for j, t in submitted_at.items() if t < at and finished_at.get(j, float("inf")) > at]
        later = [t for t in finished_at.values() if t > at]
        if outstanding and later:
            found.append(min(later) - at)
    return found


def figures_of(
    jobs: dict[str, User],
    submitted_at: dict[str, float],
    statuses: dict[str, dict[str, Any]],
    sockets: list[Socket],
    chaos: Chaos,
    work: Path,
    stack: Stack,
    args: argparse.Namespace,
) -> dict[str, Any]:
    failed = collections.Counter(s.get("error") or "?" for s in statuses.values() if s["status"] == "failed")
    seen: collections.Counter[str] = collections.Counter()
    on_socket: dict[str, str] = {}
    for s in sockets:
        for message in s.completions:
            seen[message["job_id"]] += 1
            on_socket[message["job_id"]] = message["status"]
    api_status = {"succeeded": "done", "failed": "failed"}
    disagreements = sum(
        1 for j, s in statuses.items() if s["status"] in api_status and on_socket.get(j) != api_status[s["status"]]
    )
    outputs = list((work / "var" / "storage" / "outputs" / "weaver").glob("*/*"))
    per_job = collections.Counter(p.stem.split(".")[0] for p in outputs)
    duplicate_objects = sum(n - 1 for n in per_job.values() if n > 1) + sum(1 for j in per_job if j not in jobs)
    finished_at: dict[str, float] = {}
    for s in sockets:
        for message in s.completions:
            finished_at.setdefault(message["job_id"], message["at"])
    disruptions = [(at, what) for at, what in chaos.events if not what.startswith("make run started")]
    recovery = recovery_seconds(disruptions, submitted_at, finished_at)
    return {
        "submitted": len(jobs),
        "done": sum(1 for s in statuses.values() if s["status"] == "succeeded"),
        "failed": sum(failed.values()),
        "failed_by_reason": dict(failed),
        "stuck": sum(1 for s in statuses.values() if s["status"] not in ("succeeded", "failed")),
        "duplicate_notifications": sum(n - 1 for n in seen.values() if n > 1),
        "duplicate_result_objects": duplicate_objects,
        "socket_api_disagreements": disagreements,
        "recovery_s_max": round(max(recovery, default=0.0), 1),
        "recovery_s_median": round(sorted(recovery)[len(recovery) // 2], 1) if recovery else 0.0,
        "disruptions": len(disruptions),
        "random_kills": sum(1 for _, what in chaos.events if what.startswith("SIGKILL ")),
        "socket_reconnects": sum(s.reconnects for s in sockets),
        "make_run_starts": stack.starts,
        "database": args.database,
        "redis": "embedded" if args.database == "sqlite" else "external",
        "tryons": args.tryons,
    }


def print_report(figures: dict[str, Any]) -> None:
    print(f"\n{'measure':<28}{'value':>10}")
    for name in (
        "submitted",
        "done",
        "failed",
        "stuck",
        "duplicate_notifications",
        "duplicate_result_objects",
        "socket_api_disagreements",
        "recovery_s_max",
        "recovery_s_median",
        "random_kills",
        "disruptions",
        "socket_reconnects",
        "make_run_starts",
    ):
        print(f"{name:<28}{figures[name]!s:>10}")
    for reason, count in figures["failed_by_reason"].items():
        print(f"  failed: {count} x {reason[:100]}")
    print(json.dumps(figures))


if __name__ == "__main__":
    raise SystemExit(main())
