"""Run the retention sweep: once (a CronJob on the cluster) or every N seconds (`make run`).

    python -m shared.lifecycle.sweep             # one sweep, then print what it removed as JSON
    python -m shared.lifecycle.sweep --every 3600

Settings: RETENTION_* (see README). Two sweeps at once are safe (see retention.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading

from shared.config import Settings
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle.retention import RetentionPolicy, RetentionSweep, SweepReport
from shared.runtime import configure_logging
from shared.storage import storage_from_settings

log = logging.getLogger("proteus.retention")


def sweep_once(settings: Settings) -> SweepReport:
    engine = make_engine(settings.database_url)
    try:
        sweep = RetentionSweep(
            make_session_factory(engine), storage_from_settings(settings), RetentionPolicy.from_settings(settings)
        )
        return sweep.run()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delete what the RETENTION_* settings say has expired.")
    parser.add_argument(
        "--every", type=float, default=0.0, metavar="SECONDS", help="sweep again every SECONDS until stopped (0: once)"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while True:
        try:
            report = sweep_once(settings)
            print(json.dumps(report.to_dict()), flush=True)
        except Exception:
            log.exception("retention sweep failed", extra={"fields": {"outcome": "error"}})
            if args.every <= 0:
                return 1
        if args.every <= 0 or stop.wait(args.every):
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
