"""The README's shell examples run as written against the whole system.

The curl session (sign up, upload, try on, download), the /v1 curl calls, the FASHN SDK
example and the direct CloudEvent calls are taken from README.md verbatim and run with bash
against a real stack; only the addresses change (the stack listens on free ports instead of
8000 and 8101-8107).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.routing import FUNCTION_PORTS

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (shutil.which("jq") and shutil.which("curl") and shutil.which("file")),
    reason="the README's examples need curl, jq and file",
)


def shell_blocks() -> list[str]:
    """Every fenced ```sh block of the README, in order."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S)


def block_with(marker: str) -> str:
    (block,) = [b for b in shell_blocks() if marker in b]
    return block


def readme_session(gateway_url: str, function_urls: dict[str, str]) -> str:
    """The README's examples in reading order, pointed at the test stack."""
    script = "\n".join(
        block_with(marker)
        for marker in ("G=http://localhost:8000", "KEY=$(curl -s $G/api-keys", "FASHN_BASE_URL=$G", "ce() {")
    )
    script = script.replace("G=http://localhost:8000", f"G={gateway_url}")
    script = script.replace("http://localhost:$1/", "$1")
    for name, port in FUNCTION_PORTS.items():
        script = script.replace(f"\nce {port} ", f"\nce {function_urls[name]} ")
    assert "localhost:" not in script, script
    return script


def test_the_readme_examples_run_as_written(devstack, tmp_path: Path) -> None:
    stack = devstack
    function_urls = {name: stack.function_url(name) for name in FUNCTION_PORTS}  # type: ignore[attr-defined]
    script = readme_session(stack.gateway_url, function_urls)  # type: ignore[attr-defined]
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    done = subprocess.run(
        ["bash", "-c", "set -o pipefail\n" + script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={k: v for k, v in os.environ.items() if not k.startswith("FASHN_")},
    )
    out = done.stdout
    assert done.returncode == 0, (done.returncode, out[-3000:], done.stderr[-3000:])

    # The curl session: the job finished, its result downloads as a PNG.
    assert re.search(r'"status":\s*"succeeded"', out), out[-3000:]
    assert "result.png: PNG image data" in out, out[-3000:]
    # The /v1 curl run completed with the two samples it asked for.
    v1 = re.search(r'\{\s*"status":\s*"completed",\s*"seeds":\s*\[[^\]]*\],\s*"output":\s*\[(.*?)\]\s*\}', out, re.S)
    assert v1, out[-3000:]
    assert len(re.findall(r'"http[^"]+"', v1.group(1))) == 2, v1.group(0)
    # The FASHN SDK's subscribe ran to completion, unmodified.
    assert re.search(r"^completed \['http", out, re.M), out[-3000:]
    # Five direct CloudEvent calls, each answered 200 (a reply event) or 202 (nothing to reply).
    answers = re.findall(r"HTTP/1\.1 (\d{3}) ", out)  # bodies end without a newline
    assert len(answers) == 5 and set(answers) <= {"200", "202"}, out[-6000:]
    assert (tmp_path / "result.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
