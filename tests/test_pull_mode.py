"""weave in pull mode, as it runs under KEDA: `python -m shared.streams.runner --only weave --pull weave`.

A real runner process with the weave function in-process (smoke model) takes a weave request
off the stream, writes the result and publishes the completion, with no HTTP server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from shared import event_types as t
from shared.config import Settings
from shared.events import from_stream_fields, make_event
from shared.routing import route_for
from shared.storage import storage_from_settings
from shared.streams.publish import publish
from tests.conftest import stack_environ
from tests.test_system import seed_tryon, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis]
ROOT = Path(__file__).resolve().parent.parent


def test_weave_runs_in_pull_mode(
    tmp_path: Path, smoke_models_dir: Path, redis_server_url: str, redis_prefix: str
) -> None:
    from functions.weave.smoke import write_smoke_model
    from shared.db.migrate import upgrade

    write_smoke_model(smoke_models_dir / "smoke")
    env = stack_environ(
        tmp_path / "var",
        smoke_models_dir,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=redis_prefix,
        DATABASE_URL=f"sqlite:///{tmp_path / 'proteus.db'}",
    )
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    user_id, vton_id, keys = seed_tryon(settings)
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    job_id = str(uuid.uuid4())
    request = {
        "job_id": job_id,
        "user_id": user_id,
        "vton_id": vton_id,
        **keys,
        "category": "upper",
        "steps": 2,
        "guidance": 2.5,
        "seed": 3,
        "variant": "maskfree",
        "height": 1024,
        "width": 768,
        "repaint": False,
    }
    publish(client, make_event(t.WEAVE_REQUESTED, request, source="/tests"), prefix=redis_prefix)

    runner = subprocess.Popen(
        [sys.executable, "-m", "shared.streams.runner", "--only", "weave", "--pull", "weave"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        results = redis_prefix + route_for(t.WEAVE_COMPLETED).stream

        def completed() -> dict | None:
            for _id, fields in client.xrange(results):
                if fields.get("type") == t.WEAVE_COMPLETED:
                    return from_stream_fields(fields).get_data()
            return None

        done = wait_for(completed, timeout=90)
    finally:
        runner.terminate()
        output = runner.communicate(timeout=30)[0].decode(errors="replace")
    assert (
        done["job_id"] == job_id
        and done["model"] == "catvton-maskfree"
        and done["metadata"]["smoke"] is True
        and done["seed"] == 3
    ), output[-2000:]
    assert storage_from_settings(settings).exists(done["result_key"])
    assert runner.returncode == 0, output[-2000:]
    weave = route_for(t.WEAVE_REQUESTED)
    assert client.xpending(redis_prefix + weave.stream, weave.group)["pending"] == 0  # acknowledged
