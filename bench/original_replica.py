"""The original gateway's replica (bench/original_gateway/server.js: Node.js, Express, `ws`,
pg, Redis) beside our gateway in one bench run: `--original` in bench/gateway_rest.py and
bench/gateway_ws.py.

`OriginalGateway(gateway)` installs the replica's node modules on first use (`npm ci` from the
committed package-lock.json), starts `node server.js` on a free port with our gateway's
DATABASE_URL, JWT_SECRET, REDIS_URL and REDIS_KEY_PREFIX (the same tokens work on both, and
both hear the same notification channel), waits for /healthz, and stops it.
`check_same_history` asserts, once before any timing, that the replica's GET /vton answers
what ours does: a baseline that answers something else would be worthless.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

from bench.gateway_common import REPO, Gateway, free_port, rss_mb, stop_process

REPLICA_DIR = REPO / "bench" / "original_gateway"
NODE_MAJOR_MIN = 20


def node_binary() -> str:
    """The `node` to run the replica with; SystemExit with the reason when there is none fit."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit(
            "--original needs Node.js >= 20 and npm on PATH (the original gateway's replica, "
            f"{REPLICA_DIR.relative_to(REPO)}, is a Node.js program); found node={node}, npm={npm}"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR_MIN:
        raise SystemExit(f"--original needs Node.js >= {NODE_MAJOR_MIN}; {node} is {version}")
    return node


def ensure_node_modules() -> None:
    """`npm ci` in the replica's folder when its node_modules is missing (the pinned lock file)."""
    if (REPLICA_DIR / "node_modules").is_dir():
        return
    npm = shutil.which("npm")
    assert npm is not None  # node_binary() checked
    print(f"installing the replica's node modules (npm ci in {REPLICA_DIR}) ...", flush=True)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=REPLICA_DIR, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"npm ci failed in {REPLICA_DIR}:\n{(done.stdout + done.stderr)[-3000:]}")


class OriginalGateway:
    """`node server.js` with the settings of `gateway` (our gateway under test), on its own port."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.port = free_port()
        self.log_path = gateway.work / "original.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import requests

        node = node_binary()
        ensure_node_modules()
        env = dict(os.environ)
        env.update(
            PORT=str(self.port),
            DATABASE_URL=self.gateway.database_url,
            JWT_SECRET=self.gateway.secret,
            REDIS_URL=self.gateway.redis_url,
            REDIS_KEY_PREFIX=self.gateway.prefix,
            NODE_ENV="production",
        )
        if "WS_HEARTBEAT_S" in self.gateway.extra_env:
            env["WS_HEARTBEAT_S"] = self.gateway.extra_env["WS_HEARTBEAT_S"]
        log = open(self.log_path, "wb")  # closed with the process
        self.process = subprocess.Popen(
            [node, "server.js"], cwd=REPLICA_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).text == "ok":
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the original gateway's replica did not start:\n" + self.log_tail())
            time.sleep(0.2)

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def rss_mb(self) -> float:
        """The node process's RSS, read from /proc as our worker's is."""
        assert self.process is not None
        return rss_mb(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)


def check_same_history(ours: str, replica: str, headers: dict[str, str], rows: int) -> None:
    """Both GET /vton answer `rows` try-ons, in the same order, with the same keys and values."""
    import requests

    answers = []
    for base in (ours, replica):
        response = requests.get(f"{base}/vton", headers=headers, timeout=30)
        assert response.status_code == 200, f"GET {base}/vton: {response.status_code} {response.text[:300]}"
        answers.append(response.json())
    mine, theirs = answers
    assert len(mine) == rows, f"our GET /vton answered {len(mine)} rows, not {rows}"
    assert len(theirs) == rows, f"the replica's GET /vton answered {len(theirs)} rows, not {rows}"
    for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if a.keys() != b.keys():
            raise AssertionError(
                f"row {index}: keys differ: ours only {a.keys() - b.keys()}, replica only {b.keys() - a.keys()}"
            )
        differ: dict[str, Any] = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        if differ:
            raise AssertionError(f"row {index}: values differ (ours, replica): {differ}")
