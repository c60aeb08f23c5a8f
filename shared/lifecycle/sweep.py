"""Run the retention sweep: once (a CronJob on the cluster) or every N seconds (`make run`).

    python -m shared.lifecycle.sweep                # one sweep, then print what it removed as JSON
    python -m shared.lifecycle.sweep --base64-only  # only the return_base64 results (every few minutes)
    python -m shared.lifecycle.sweep --every 3600   # and the return_base64 ones every BASE64_RESULT_TTL_S / 4

Settings: RETENTION_* (see README). Two sweeps at once are safe (see retention.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time

from shared.config import Settings
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle.retention import RetentionPolicy, RetentionSweep, SweepReport
from shared.runtime import configure_logging
from shared.storage import storage_from_settings

log = logging.getLogger("proteus.retention")


def sweep_once(settings: Settings, *, base64_only: bool = False) -> SweepReport:
    engine = make_engine(settings.database_url)
    try:
        sweep = RetentionSweep(
            make_session_factory(engine), storage_from_settings(settings), RetentionPolicy.from_settings(settings)
        )
        return sweep.run_base64() if base64_only else sweep.run()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delete what the RETENTION_* settings say has expired.")
    parser.add_argument(
        "--every", type=float, default=0.0, metavar="SECONDS", help="sweep again every SECONDS until stopped (0: once)"
    )
    parser.add_argument(
        "--base64-only", action="store_true", help="sweep only the return_base64 results (BASE64_RESULT_TTL_S)"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # Between full sweeps, the return_base64 results alone, every quarter of their time to live.
    pause = min(args.every, settings.base64_result_ttl_s / 4) if args.every > 0 else 0.0
    next_full = 0.0
    while True:
        full = not args.base64_only and time.monotonic() >= next_full
        try:
            report = sweep_once(settings, base64_only=not full)
            print(json.dumps(report.to_dict()), flush=True)
        except Exception:
            log.exception("retention sweep failed", extra={"fields": {"outcome": "error"}})
            if args.every <= 0:
                return 1
        if full:
            next_full = time.monotonic() + args.every
        if args.every <= 0 or stop.wait(pause):
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
