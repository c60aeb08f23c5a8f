"""The parent side of bench/gateway_ws.py: the client processes that hold the sockets
(bench/gateway_ws_client.py), logins at a fixed rate, and completions published as notify
publishes them. Used for our gateway and, with --original, for the original's replica."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench password 1"  # bench.gateway_common.PASSWORD


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
