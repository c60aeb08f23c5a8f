"""The stream runner as a process: the clients it refuses, the command line, a prompt stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from shared.streams import publish
from shared.streams.runner import StreamRunner

from .conftest import NOTIFY, pending, progress, push, streams, wait_for

ROOT = Path(__file__).resolve().parents[3]


def test_runner_refuses_a_bytes_client_and_unknown_pull(redis_server_url, runner_settings, toy):
    with pytest.raises(ValueError, match="decode_responses"):
        StreamRunner(redis.Redis.from_url(redis_server_url), runner_settings)
    with pytest.raises(ValueError, match="weave"):
        StreamRunner(
            redis.Redis.from_url(redis_server_url, decode_responses=True),
            runner_settings,
            routes=[NOTIFY],
            pull={"weave": toy},
        )


def test_command_line_runner_delivers_and_stops_on_sigterm(
    rds, runner_settings, function_url, toy, redis_prefix, redis_server_url
):
    stream, _, _ = streams(redis_prefix)
    env = dict(
        os.environ,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=redis_prefix,
        NOTIFY_URL=function_url,
        PROTEUS_DATA_DIR=runner_settings.data_dir,
        RUNNER_BLOCK_MS="50",
        JWT_SECRET="x" * 40,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.streams.runner", "--only", "notify", "--consumer", "cli"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        event = progress()
        publish(rds, event, prefix=redis_prefix)
        wait_for(lambda: toy.calls and pending(rds, stream) == 0, timeout=15, message="CLI delivery")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""
    assert '"message": "delivered"' in output and "stopping" in output


def test_stop_is_prompt_while_idle(rds, runner_settings, function_url, start_runner):
    runner = start_runner(push(runner_settings, function_url))
    time.sleep(0.1)
    started = time.monotonic()
    runner.stop(timeout=5)
    assert time.monotonic() - started < 1.0 and not any(t.is_alive() for t in runner.threads)
